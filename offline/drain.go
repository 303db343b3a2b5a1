package offline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A Drain reads at most this much per read transaction, so memory stays
// flat however long the queue, and deletes what was delivered in one
// write (a few if the entries are scattered, see forget), so deletions
// share commits too.
const (
	drainBatch      = 256
	drainBatchBytes = 4 << 20 // stanza bytes; a batch holds at least one entry
)

// Drain calls deliver for each entry of recipient, oldest first, until
// none is left, and returns how many deliver accepted. An entry is deleted
// only after deliver returned nil for it (at-least-once: see the package
// doc). An entry older than the TTL is deleted without being delivered,
// as Purge would have, so its age bounds what a recipient gets whenever
// Purge last ran. Drain stops at the first error from deliver, or when ctx ends,
// and returns that error; that entry and all later ones stay queued for
// the next Drain. If deleting delivered entries fails, they will be
// delivered again, and the error says so.
//
// deliver runs outside any transaction, so it may block (on the network,
// say) without holding up writers. Entries enqueued while Drain runs are
// delivered by it too. Drains of one recipient run one at a time: a second
// waits for the first, so two devices coming online together do not get
// every stanza twice. A corrupt entry stops Drain with an error until
// Purge removes it at the end of its TTL.
func (q *Queue) Drain(ctx context.Context, recipient string, deliver func(Entry) error) (delivered int, err error) {
	prefix, err := recipientPrefix(recipient)
	if err != nil {
		return 0, err
	}
	unlock, err := q.lockDrain(ctx, recipient)
	if err != nil {
		return 0, err
	}
	defer unlock()
	for next := uint64(0); ; {
		batch, err := q.readBatch(recipient, prefix, next)
		if err != nil || len(batch) == 0 {
			return delivered, err
		}
		expired := q.now().Add(-q.limits.TTL)
		done := 0 // delivered or expired
		var failed error
		for _, e := range batch {
			if failed = ctx.Err(); failed != nil {
				break
			}
			if !e.Accepted.Before(expired) {
				if failed = deliver(e); failed != nil {
					break
				}
				delivered++
			}
			done++
		}
		// Delivered is delivered: record it even if ctx has ended, or
		// the recipient gets these again.
		if err := q.forget(context.WithoutCancel(ctx), recipient, prefix, batch[:done]); err != nil {
			return delivered, errors.Join(failed, fmt.Errorf("offline: deleting delivered or expired entries of %s failed, up to %d will be delivered again: %w", recipient, done, err))
		}
		if failed != nil {
			return delivered, failed
		}
		next = batch[len(batch)-1].Seq + 1
	}
}

// readBatch returns the next entries of a recipient from Seq next on.
func (q *Queue) readBatch(recipient string, prefix []byte, next uint64) ([]Entry, error) {
	var batch []Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		c := b.queue.Cursor()
		size := 0
		for k, _ := c.Seek(queueKey(prefix, next)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(batch) == drainBatch || size >= drainBatchBytes {
				break
			}
			if len(batch)%checkEvery == 0 {
				q.mapped.Trim(tx)
			}
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			e, err := decodeEntry(b.stanzas.Get(k[len(prefix):]))
			if err != nil {
				return fmt.Errorf("offline: entry %d of %s: %w", seq, recipient, err)
			}
			e.Recipient, e.Seq = recipient, seq
			batch = append(batch, e)
			size += len(e.Stanza)
		}
		return nil
	})
	return batch, err
}

// forget deletes delivered entries, in one transaction unless they are
// scattered enough through the file to spend the budget of mapped pages
// first: unmapping within the transaction would not help, as its commit
// reads again every page it changes.
func (q *Queue) forget(ctx context.Context, recipient string, prefix []byte, entries []Entry) error {
	for len(entries) > 0 {
		n := 0
		err := q.w.Update(ctx, func(tx *bolt.Tx) error {
			n = 0 // the Writer may run this function again
			q.mapped.Trim(tx)
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			tot := b.totals()
			for _, e := range entries {
				if err := b.removeEntry(&tot, recipient, prefix, e.Seq, e.Accepted); err != nil {
					return err
				}
				if n++; n%checkEvery == 0 && q.mapped.Over() {
					break
				}
			}
			return b.setTotals(tot)
		})
		if err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// drainLock serialises the Drains of one recipient.
type drainLock struct {
	token chan struct{} // capacity 1: full while a Drain runs
	users int           // Drains running or waiting; guarded by Queue.drainMu
}

// lockDrain waits until no other Drain of recipient runs, or ctx ends.
func (q *Queue) lockDrain(ctx context.Context, recipient string) (unlock func(), err error) {
	q.drainMu.Lock()
	l := q.draining[recipient]
	if l == nil {
		l = &drainLock{token: make(chan struct{}, 1)}
		q.draining[recipient] = l
	}
	l.users++
	q.drainMu.Unlock()
	leave := func() {
		q.drainMu.Lock()
		if l.users--; l.users == 0 {
			delete(q.draining, recipient)
		}
		q.drainMu.Unlock()
	}
	select {
	case l.token <- struct{}{}:
		return func() { <-l.token; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
