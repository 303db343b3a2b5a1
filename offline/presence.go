package offline

import (
	"context"
	"sync"
)

// Presence is who among the recipients is online, as the XMPP server
// reports it to the relay (XEP-0356's presence permission). It sits next
// to the queue because the relay's wake-ups depend on the two together:
// the relay writes a presence and then asks whether anything is queued,
// and writes a queue entry and then asks whether the recipient is online,
// so when presence and queue are one database that several instances
// share, one of two racing instances always sees the other's write and no
// wake-up is lost (docs/RELAY.md).
type Presence interface {
	// Update records that full, a full JID of bare, is available or not.
	Update(ctx context.Context, bare, full string, available bool) error
	// State reports whether bare has a resource available, and whether
	// any presence of bare was recorded since the last Reset.
	State(ctx context.Context, bare string) (online, known bool, err error)
	// Reset forgets every presence: the server is about to report every
	// available user again (Prosody does when the component connects).
	Reset(ctx context.Context) error
}

// MemPresence is Presence in memory, for one instance: the server reports
// presences again on every connection, so there is nothing to keep.
type MemPresence struct {
	mu     sync.Mutex
	online map[string]map[string]struct{} // bare JID -> available full JIDs
	known  map[string]bool                // bare JIDs with any presence since Reset
}

// NewMemPresence returns an empty MemPresence.
func NewMemPresence() *MemPresence {
	return &MemPresence{online: map[string]map[string]struct{}{}, known: map[string]bool{}}
}

// Update implements Presence.
func (p *MemPresence) Update(_ context.Context, bare, full string, available bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known[bare] = true
	res := p.online[bare]
	if !available {
		delete(res, full)
		if len(res) == 0 {
			delete(p.online, bare)
		}
		return nil
	}
	if res == nil {
		res = make(map[string]struct{})
		p.online[bare] = res
	}
	res[full] = struct{}{}
	return nil
}

// State implements Presence.
func (p *MemPresence) State(_ context.Context, bare string) (online, known bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.online[bare]) > 0, p.known[bare], nil
}

// Reset implements Presence.
func (p *MemPresence) Reset(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.online = map[string]map[string]struct{}{}
	p.known = map[string]bool{}
	return nil
}

// Len returns how many users the store knows of: what it holds in memory.
func (p *MemPresence) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.known)
}
