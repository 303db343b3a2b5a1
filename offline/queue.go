// Package offline keeps media stanzas for recipients who are offline, in
// bbolt, until they come back.
//
// The promise: once Enqueue returns nil, the stanza is on disk (committed
// and fsync'd) and Drain will hand it to its deliver function at least once,
// in the order Enqueue accepted it relative to the recipient's other
// stanzas, unless Purge removes it first for being older than the TTL.
// "At least once" because an entry is deleted only after deliver returned
// nil, in a later transaction: if the process dies between the two, the
// entry is delivered again after restart. Deletions of one Drain batch (up
// to 256 entries) commit together, or in a few transactions when they are
// scattered through a large file, so a crash can repeat up to one batch.
//
// The package knows nothing of XMPP: a stanza is opaque bytes and a
// recipient is a string (the xmpp package passes bare JIDs).
package offline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/boltmem"
	"mediaslot/internal/groupcommit"
)

// Limits cap what one recipient may have queued and for how long. A zero
// or negative field takes its default.
type Limits struct {
	MaxMessages int           // per recipient; default 1000
	MaxBytes    int64         // per recipient, sum of stanza sizes; default 64 MiB
	TTL         time.Duration // Purge removes entries older than this; default 30 days
}

// Default limits, chosen so one recipient cannot fill the disk and a
// stanza still waits through a long holiday.
const (
	DefaultMaxMessages = 1000
	DefaultMaxBytes    = 64 << 20
	DefaultTTL         = 30 * 24 * time.Hour
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultMaxMessages
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.TTL <= 0 {
		l.TTL = DefaultTTL
	}
	return l
}

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

// Entry is one queued stanza for one recipient.
type Entry struct {
	Recipient string
	// Seq identifies the stanza: increasing in the order Enqueue stored
	// stanzas, and shared by the recipients of one Enqueue. A recipient's
	// entries drain in Seq order.
	Seq    uint64
	Sender string // as given to Enqueue: the original sender's full or bare JID
	// Accepted is when the transaction that stored the entry ran, just
	// before Enqueue returned: the time for a XEP-0203 delay stamp. It does
	// not decrease along Seq unless the wall clock is set back.
	Accepted time.Time
	Stanza   []byte
}

// LimitKind names the per-recipient cap that refused a stanza.
type LimitKind int

// The caps of Limits that Enqueue enforces.
const (
	MessageLimit LimitKind = iota + 1 // Limits.MaxMessages
	ByteLimit                         // Limits.MaxBytes
)

func (k LimitKind) String() string {
	switch k {
	case MessageLimit:
		return "messages"
	case ByteLimit:
		return "bytes"
	}
	return fmt.Sprintf("LimitKind(%d)", int(k))
}

// LimitError is returned by Enqueue when storing the stanza would take a
// recipient over a cap. Nothing was stored, for any recipient.
type LimitError struct {
	Recipient string
	Kind      LimitKind
	Max       int64 // the cap: a number of messages or of bytes
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("offline: queue of %s is full (at most %d %s)", e.Recipient, e.Max, e.Kind)
}

// Stats describe the whole queue, for metrics.
type Stats struct {
	Entries    int64     // one per recipient of each queued stanza
	Stanzas    int64     // stored stanzas: one per Enqueue still queued for someone
	Bytes      int64     // sum of stored stanza sizes, each stanza counted once
	Recipients int64     // recipients with at least one entry
	Oldest     time.Time // Accepted of the oldest entry; zero if the queue is empty
}

// Queue is a durable per-recipient queue of stanzas. Its methods are safe
// for concurrent use.
type Queue struct {
	db     *bolt.DB
	w      *groupcommit.Writer
	limits Limits
	now    func() time.Time // replaced by tests
	mapped *boltmem.Budget  // of the file's pages its transactions keep mapped
	// stored counts the enqueue functions run, so the budget is checked
	// every checkEvery of them as Drain and Purge check it; only the
	// Writer's goroutine, which runs them one at a time, touches it.
	stored uint64

	drainMu  sync.Mutex
	draining map[string]*drainLock
}

// Open returns the queue kept in db, creating its buckets if needed. All
// its writes go through w, which must commit to db; both stay the caller's
// to close, the Writer first.
func Open(db *bolt.DB, w *groupcommit.Writer, l Limits) (*Queue, error) {
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
		for _, name := range [][]byte{bucketStanzas, bucketQueue, bucketHolders, bucketByTime, bucketCounts} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("offline: creating buckets: %w", err)
	}
	return &Queue{
		db:       db,
		w:        w,
		limits:   l.withDefaults(),
		now:      time.Now,
		mapped:   mapped,
		draining: make(map[string]*drainLock),
	}, nil
}

// Enqueue queues stanza for each recipient, all or none, and returns once
// that is durable. The stanza is stored once however many recipients it
// has; a recipient listed twice gets it once. Limits count it in full for
// each recipient. If any recipient would go over a cap, nothing is stored
// and the error is a *LimitError naming one such recipient. If ctx ends
// before the write was handed to the Writer, nothing is stored; once
// handed over, Enqueue waits for the outcome whatever ctx does, so a nil
// error always means stored.
func (q *Queue) Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error {
	rcpts, prefixes, err := distinctRecipients(recipients)
	if err != nil {
		return err
	}
	// Encoded outside the Writer's goroutine, which all writers share;
	// only the time is stamped inside the transaction.
	value, err := encodeEntry(Entry{Sender: sender, Stanza: stanza})
	if err != nil {
		return err
	}
	size := uint64(len(stanza))
	var refused *LimitError
	err = q.w.Update(ctx, func(tx *bolt.Tx) error {
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
		for _, r := range rcpts {
			if refused = q.check(b.count(r), r, size); refused != nil {
				// Nothing written yet: report the refusal without failing
				// the transaction, which would make the Writer redo the
				// other callers' functions.
				return nil
			}
		}
		id, err := b.root.NextSequence()
		if err != nil {
			return err
		}
		now := q.now()
		stampAccepted(value, now)
		tot := b.totals()
		if err := b.addStanza(&tot, id, value, now, size, len(rcpts)); err != nil {
			return err
		}
		for i, r := range rcpts {
			if err := b.addEntry(&tot, r, prefixes[i], id, size); err != nil {
				return err
			}
		}
		return b.setTotals(tot)
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	return nil
}

// distinctRecipients returns recipients without repeats, and their key
// prefixes.
func distinctRecipients(recipients []string) ([]string, [][]byte, error) {
	rcpts := slices.Clone(recipients)
	slices.Sort(rcpts)
	rcpts = slices.Compact(rcpts)
	if len(rcpts) == 0 {
		return nil, nil, errors.New("offline: no recipients")
	}
	prefixes := make([][]byte, len(rcpts))
	for i, r := range rcpts {
		p, err := recipientPrefix(r)
		if err != nil {
			return nil, nil, err
		}
		prefixes[i] = p
	}
	return rcpts, prefixes, nil
}

// check returns the cap that one more stanza of size bytes would break.
func (q *Queue) check(c counter, r string, size uint64) *LimitError {
	if c.entries+1 > uint64(q.limits.MaxMessages) {
		return &LimitError{Recipient: r, Kind: MessageLimit, Max: int64(q.limits.MaxMessages)}
	}
	if c.bytes+size > uint64(q.limits.MaxBytes) {
		return &LimitError{Recipient: r, Kind: ByteLimit, Max: q.limits.MaxBytes}
	}
	return nil
}

// Pending reports whether recipient has queued entries. It is one key
// lookup in a read transaction, cheap enough for every available presence.
// A read error counts as "nothing pending": the next presence tries again.
func (q *Queue) Pending(recipient string) bool {
	pending := false
	_ = q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		pending = b.count(recipient).entries > 0
		return nil
	})
	return pending
}

// Stats returns the queue's totals, kept up to date by every write, and
// the oldest entry's acceptance time.
func (q *Queue) Stats() (Stats, error) {
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
