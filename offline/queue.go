// BoltQueue keeps the relay queue in bbolt: the shared file of `mediaslot
// serve`, fsync'd at every commit, with group commit (internal/groupcommit).
// The layout is in layout.go.

package offline

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/boltmem"
	"mediaslot/internal/groupcommit"
)

// mappedBudget is how much more of the file the queue's transactions may
// leave mapped (see boltmem) before they unmap it. Entries scattered
// through a large file each map a few pages, 64 KiB apiece with
// fault-around: without a budget, draining 1,000 entries of a
// million-stanza queue kept 350 MB resident, against a target of 64 MB for
// the whole of mediaslot. A smaller budget costs more unmapping (about 3 µs
// per 64 KiB) and more faults of the pages every transaction reads, the
// top of each B+tree.
const mappedBudget = 8 << 20

// checkEvery is how many entries the queue reads, stores or deletes between
// checks of the budget. A check reads /proc/self/statm, 1.5 µs, a tenth of
// what draining an entry costs; 8 scattered entries map about 3 MB.
const checkEvery = 8

// BoltQueue is the Queue in a bbolt file. Its methods are safe for
// concurrent use.
type BoltQueue struct {
	db     *bolt.DB
	w      *groupcommit.Writer
	limits Limits
	now    func() time.Time // replaced by tests
	mapped *boltmem.Budget  // of the file's pages its transactions keep mapped
	// stored counts the enqueue functions run, so the budget is checked
	// every checkEvery of them as Drain and Purge check it; only the
	// Writer's goroutine, which runs them one at a time, touches it.
	stored uint64

	drains DrainLocks
}

var _ Queue = (*BoltQueue)(nil)

// Open returns the queue kept in db, creating its buckets if needed. All
// its writes go through w, which must commit to db; both stay the caller's
// to close, the Writer first.
func Open(db *bolt.DB, w *groupcommit.Writer, l Limits) (*BoltQueue, error) {
	mapped := boltmem.NewBudget(mappedBudget)
	err := db.Update(func(tx *bolt.Tx) error {
		// If bolt.Open had to rebuild the free list, it mapped the whole
		// file: give that back now rather than at the first Trim. (A
		// failure only leaves it mapped.)
		_ = mapped.Release(tx)
		root, err := tx.CreateBucketIfNotExists(bucketOffline)
		if err != nil {
			return err
		}
		// A file from before the seen set has entries whose recipients
		// were queued for under the full TTL: keep it that way by
		// counting them as seen (and as never counted unseen).
		upgrade := root.Bucket(bucketSeen) == nil
		for _, name := range [][]byte{bucketStanzas, bucketQueue, bucketHolders, bucketByTime, bucketCounts, bucketSenders, bucketShares, bucketSeen, bucketUnseen, bucketUnseenBy} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if upgrade {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			mark := uint64s(uint64(time.Now().UnixNano()))
			return b.counts.ForEach(func(r, _ []byte) error { return b.seen.Put(r, mark) })
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("offline: creating buckets: %w", err)
	}
	return &BoltQueue{
		db:     db,
		w:      w,
		limits: l.WithDefaults(),
		now:    time.Now,
		mapped: mapped,
	}, nil
}

// Enqueue implements Queue.Enqueue: durable means committed and fsync'd.
func (q *BoltQueue) Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error {
	wait, err := q.EnqueueStart(ctx, sender, recipients, stanza)
	if err != nil {
		return err
	}
	return wait()
}

// EnqueueStart is Enqueue without the wait for the disk: it returns once
// the stanza is queued for a commit, in order after every enqueue started
// before it, and wait returns what Enqueue would have once it committed.
// A sender's next message can then be checked while this one commits, and
// share its commit (the relay's shards).
func (q *BoltQueue) EnqueueStart(ctx context.Context, sender string, recipients []string, stanza []byte) (func() error, error) {
	m, err := NewMessage(sender, recipients, stanza)
	if err != nil {
		return nil, err
	}
	prefixes := make([][]byte, len(m.Recipients))
	for i, r := range m.Recipients {
		if prefixes[i], err = recipientPrefix(r); err != nil {
			return nil, err
		}
	}
	// Encoded outside the Writer's goroutine, which all writers share;
	// only the time is stamped inside the transaction.
	value, err := encodeEntry(Entry{Sender: sender, Stanza: stanza})
	if err != nil {
		return nil, err
	}
	size := uint64(len(stanza))
	var refused *LimitError
	wait, err := q.w.Start(ctx, func(tx *bolt.Tx) error {
		// The Writer may run this function again if another one in its
		// group fails, so it sets its results rather than accumulating them.
		refused = nil
		if q.stored++; q.stored%checkEvery == 0 {
			q.mapped.Trim(tx)
		}
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		tot := b.totals()
		u := b.usage(tot, m, prefixes)
		if refused = q.limits.Check(m, u); refused != nil {
			// Nothing written yet: report the refusal without failing
			// the transaction, which would make the Writer redo the
			// other callers' functions.
			return nil
		}
		id, err := b.root.NextSequence()
		if err != nil {
			return err
		}
		now := q.now()
		stampAccepted(value, now)
		if err := b.addStanza(&tot, id, value, now, size, len(m.Recipients), m.Account); err != nil {
			return err
		}
		for i, r := range m.Recipients {
			if err := b.addEntry(&tot, r, prefixes[i], id, now, size, m.Account, u.Recipients[i].Seen); err != nil {
				return err
			}
		}
		return b.setTotals(tot)
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		if err := wait(); err != nil {
			return err
		}
		if refused != nil {
			return refused
		}
		return nil
	}, nil
}

// usage reads the counters the caps of m check.
func (b buckets) usage(tot totals, m Message, prefixes [][]byte) Usage {
	u := Usage{
		Recipients: make([]RecipientUsage, len(m.Recipients)),
		Sender:     b.counter(b.senders, []byte(m.Account)).exported(),
		UnseenBy:   b.counter(b.unseenBy, []byte(m.Account)).exported(),
		Unseen:     Counter{tot.unseenEntries, tot.unseenBytes},
		Total:      Counter{tot.entries, tot.bytes},
	}
	for i, r := range m.Recipients {
		u.Recipients[i] = RecipientUsage{
			Seen:  b.isSeen(r),
			Queue: b.count(r).exported(),
			Share: b.counter(b.shares, shareKey(prefixes[i], m.Account)).exported(),
		}
	}
	return u
}

// MarkSeen implements Queue.MarkSeen. A recipient already marked costs
// one key lookup; a new one is handed to the Writer, in order with later
// Enqueues and Purges.
func (q *BoltQueue) MarkSeen(ctx context.Context, recipient string) error {
	if _, err := recipientPrefix(recipient); err != nil {
		return err
	}
	seen := false
	if err := q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err == nil {
			seen = b.isSeen(recipient)
		}
		return err
	}); err != nil || seen {
		return err
	}
	return q.w.Submit(ctx, func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return b.markSeen(recipient, q.now())
	}, nil)
}

// Pending implements Queue.Pending: one key lookup in a read transaction.
func (q *BoltQueue) Pending(recipient string) bool {
	pending := false
	err := q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		pending = b.count(recipient).entries > 0
		return nil
	})
	return err != nil || pending
}

// Stats implements Queue.Stats: the totals are kept up to date by every
// write.
func (q *BoltQueue) Stats() (Stats, error) {
	var s Stats
	err := q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		t := b.totals()
		s = Stats{
			Entries:    int64(t.entries),
			Stanzas:    int64(t.stanzas),
			Bytes:      int64(t.bytes),
			Recipients: int64(t.recipients),
		}
		if k, _ := b.byTime.Cursor().First(); k != nil {
			s.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(k)))
		}
		return nil
	})
	return s, err
}
