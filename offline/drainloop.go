package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A Drain reads at most this much at a time, so memory stays flat however
// long the queue, and deletes what was delivered in one write, so
// deletions share commits too. The batch is also what a crash may deliver
// twice (docs/RELAY.md).
const (
	DrainBatch      = 256
	DrainBatchBytes = 4 << 20 // stanza bytes; a batch holds at least one entry
)

// ConfirmEvery is how many deliveries a Drain with a confirm step confirms
// at once: with one ping per 16 messages a flush costs ejabberd half the
// CPU and Prosody a tenth less than with one per message, while a lost
// confirmation sends at most 16 again (docs/RELAY.md).
const ConfirmEvery = 16

// DrainBatches is the loop of every backend's Drain, so that the order,
// the TTL and the at-least-once rule cannot drift apart between them. It
// reads batches with read (entries of the recipient from Seq next on, in
// Seq order, at most DrainBatch of them and DrainBatchBytes of stanzas
// unless one alone is larger), hands each to deliver, confirms them with
// confirm (if not nil) every ConfirmEvery deliveries and at the end of the
// batch, and deletes the confirmed and expired ones with forget before
// reading on. What deliver took before it failed is confirmed too, or it
// would go twice. An entry accepted before expiry() is deleted without
// being delivered. Delivered is delivered: forget runs even if ctx has
// ended, or the recipient gets those entries again.
func DrainBatches(ctx context.Context, recipient string, read func(next uint64) ([]Entry, error), forget func(context.Context, []Entry) error, expiry func() time.Time, deliver func(Entry) error, confirm func() error) (delivered int, err error) {
	if confirm == nil {
		confirm = func() error { return nil }
	}
	for next := uint64(0); ; {
		batch, err := read(next)
		if err != nil || len(batch) == 0 {
			return delivered, err
		}
		expired := expiry()
		done := 0        // delivered or expired
		safe := 0        // of those, confirmed or expired: batch[:safe] may go
		unconfirmed := 0 // delivered since the last confirm
		var failed error
		confirmFailed := false
		for _, e := range batch {
			if failed = ctx.Err(); failed != nil {
				break
			}
			if !e.Accepted.Before(expired) {
				if failed = deliver(e); failed != nil {
					break
				}
				unconfirmed++
			}
			done++
			if unconfirmed == 0 {
				safe = done
			} else if unconfirmed == ConfirmEvery {
				if failed = confirm(); failed != nil {
					confirmFailed = true
					break
				}
				delivered, unconfirmed, safe = delivered+unconfirmed, 0, done
			}
		}
		if unconfirmed > 0 && !confirmFailed {
			if err := confirm(); err != nil {
				failed = cmp.Or(failed, err)
			} else {
				delivered, safe = delivered+unconfirmed, done
			}
		}
		if safe > 0 {
			if err := forget(context.WithoutCancel(ctx), batch[:safe]); err != nil {
				return delivered, errors.Join(failed, fmt.Errorf("offline: deleting delivered or expired entries of %s failed, up to %d will be delivered again: %w", recipient, safe, err))
			}
		}
		if failed != nil {
			return delivered, failed
		}
		next = batch[len(batch)-1].Seq + 1
	}
}

// DrainLocks serialises the Drains of one recipient within a process. Its
// zero value is ready to use.
type DrainLocks struct {
	mu       sync.Mutex
	draining map[string]*drainLock
}

// drainLock is one recipient's lock.
type drainLock struct {
	token chan struct{} // capacity 1: full while a Drain runs
	users int           // Drains running or waiting; guarded by DrainLocks.mu
}

// Lock waits until no other Drain of recipient holds the lock, or ctx
// ends.
func (d *DrainLocks) Lock(ctx context.Context, recipient string) (unlock func(), err error) {
	d.mu.Lock()
	if d.draining == nil {
		d.draining = make(map[string]*drainLock)
	}
	l := d.draining[recipient]
	if l == nil {
		l = &drainLock{token: make(chan struct{}, 1)}
		d.draining[recipient] = l
	}
	l.users++
	d.mu.Unlock()
	leave := func() {
		d.mu.Lock()
		if l.users--; l.users == 0 {
			delete(d.draining, recipient)
		}
		d.mu.Unlock()
	}
	select {
	case l.token <- struct{}{}:
		return func() { <-l.token; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// Held returns how many recipients have a Drain running or waiting: for
// tests that check none is left behind, and that wait for a second Drain
// to queue behind the first.
func (d *DrainLocks) Held() (recipients, users int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.draining {
		users += l.users
	}
	return len(d.draining), users
}
