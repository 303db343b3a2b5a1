package offline

import (
	"context"
	"sync"
	"time"
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
	// Update records that full, a full JID of bare, is available or not,
	// as a presence that arrived at at says, unless a presence of full
	// that arrived later is recorded: two instances may record one user's
	// presences in the other order than they arrived.
	Update(ctx context.Context, bare, full string, available bool, at time.Time) error
	// State reports whether bare has a resource available, and whether
	// any presence of bare was recorded since the last Reset.
	State(ctx context.Context, bare string) (online, known bool, err error)
	// Reset forgets every presence: the server is about to report every
	// available user again (Prosody does when the component connects).
	Reset(ctx context.Context) error
	// SetGrant records what the server granted the relay (its XEP-0356
	// advertisement, in the relay's own encoding), and Grant returns the
	// last one recorded, nil if none: ejabberd hands the advertisement to
	// any one of a component's connections, so the instances share it.
	SetGrant(ctx context.Context, grant []byte) error
	Grant(ctx context.Context) ([]byte, error)
}

// MemPresence is Presence in memory, for one instance: the server reports
// presences again on every connection, so there is nothing to keep.
type MemPresence struct {
	mu    sync.Mutex
	users map[string]map[string]resource // bare JID -> full JID -> its last presence; an empty map: known
	grant []byte
}

// resource is the last presence of a full JID.
type resource struct {
	available bool
	at        time.Time
}

// TombstoneAge is how long a backend keeps an unavailable resource's
// presence: longer than two instances can be apart in handling one user's
// presences, so that an older available one recorded late loses to it.
const TombstoneAge = time.Minute

// NewMemPresence returns an empty MemPresence.
func NewMemPresence() *MemPresence {
	return &MemPresence{users: map[string]map[string]resource{}}
}

// Update implements Presence.
func (p *MemPresence) Update(_ context.Context, bare, full string, available bool, at time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	res := p.users[bare]
	if res == nil {
		res = map[string]resource{}
		p.users[bare] = res
	}
	for f, r := range res {
		if !r.available && r.at.Before(at.Add(-TombstoneAge)) {
			delete(res, f)
		}
	}
	if r, ok := res[full]; ok && !r.at.Before(at) {
		return nil
	}
	res[full] = resource{available, at}
	return nil
}

// State implements Presence.
func (p *MemPresence) State(_ context.Context, bare string) (online, known bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	res, known := p.users[bare]
	for _, r := range res {
		online = online || r.available
	}
	return online, known, nil
}

// Reset implements Presence.
func (p *MemPresence) Reset(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users = map[string]map[string]resource{}
	return nil
}

// Len returns how many users the store knows of: what it holds in memory.
func (p *MemPresence) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.users)
}

// SetGrant implements Presence.
func (p *MemPresence) SetGrant(_ context.Context, grant []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.grant = append([]byte(nil), grant...)
	return nil
}

// Grant implements Presence.
func (p *MemPresence) Grant(context.Context) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grant, nil
}
