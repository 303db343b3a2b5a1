package offline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Drain implements Queue.Drain. deliver runs outside any transaction, so
// it may block (on the network, say) without holding up writers. A
// corrupt entry stops Drain with an error until Purge removes it at the
// end of its TTL.
func (q *BoltQueue) Drain(ctx context.Context, recipient string, deliver func(Entry) error, confirm func() error) (delivered int, err error) {
	prefix, err := recipientPrefix(recipient)
	if err != nil {
		return 0, err
	}
	unlock, err := q.drains.Lock(ctx, recipient)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return DrainBatches(ctx, recipient,
		func(next uint64) ([]Entry, error) { return q.readBatch(recipient, prefix, next) },
		func(ctx context.Context, done []Entry) error { return q.forget(ctx, recipient, prefix, done) },
		func() time.Time { return q.now().Add(-q.limits.TTL) },
		deliver, confirm)
}

// readBatch returns the next entries of a recipient from Seq next on.
func (q *BoltQueue) readBatch(recipient string, prefix []byte, next uint64) ([]Entry, error) {
	var batch []Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		c := b.queue.Cursor()
		size := 0
		for k, _ := c.Seek(queueKey(prefix, next)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(batch) == DrainBatch || size >= DrainBatchBytes {
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
func (q *BoltQueue) forget(ctx context.Context, recipient string, prefix []byte, entries []Entry) error {
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
