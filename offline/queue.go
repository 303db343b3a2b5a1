// Package offline keeps media stanzas for recipients who are offline, in
// bbolt, until they come back.
//
// The promise: once Enqueue returns nil, the stanza is on disk (committed
// and fsync'd) and Drain will hand it to its deliver function at least once,
// in the order Enqueue accepted it relative to the recipient's other
// stanzas, unless it is older than the TTL by then (or than the shorter
// UnseenTTL, for a recipient MarkSeen was never told about): Purge removes
// such entries, and Drain drops them instead of delivering them.
// "At least once" because an entry is deleted only after deliver returned
// nil, in a later transaction: if the process dies between the two, the
// entry is delivered again after restart. Deletions of one Drain batch (up
// to 256 entries) commit together, or in a few transactions when they are
// scattered through a large file, so a crash can repeat up to one batch.
//
// The package knows nothing of XMPP: a stanza is opaque bytes and a
// recipient is a string (the xmpp package passes bare JIDs). Only the caps
// of one sender read its string: the part before any '/' is the account.
package offline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/boltmem"
	"mediaslot/internal/groupcommit"
)

// Limits cap what the queue holds: for one recipient, for one sender, for
// recipients never seen online, and in all; and for how long. A zero or
// negative field takes its default.
//
// "Messages" count entries, one per recipient of each stanza, as the
// recipient's queue sees it. The bytes of one recipient (and of one
// sender's share of it, and of recipients never seen) count each entry's
// stanza in full; the bytes of one sender and of the whole queue count
// each stored stanza once, as the disk does.
type Limits struct {
	MaxMessages int           // per recipient; default 1000
	MaxBytes    int64         // per recipient, sum of stanza sizes; default 64 MiB
	TTL         time.Duration // entries older than this are dropped, not delivered; default 30 days

	// SenderShare is the fraction of MaxMessages and MaxBytes one sender
	// may hold in one recipient's queue, and of MaxUnseenMessages and
	// MaxUnseenBytes for all recipients never seen, so that a flood from
	// one sender leaves room for the others; default 0.25. Values above 1
	// count as 1.
	SenderShare float64

	MaxSenderMessages int   // queued from one sender, for all recipients; default 4096
	MaxSenderBytes    int64 // default 128 MiB
	MaxTotalMessages  int   // in the whole queue; default 100,000
	MaxTotalBytes     int64 // default 1 GiB

	// Recipients MarkSeen was never told about may well not exist (a
	// mistyped or invented name on a local domain): their entries expire
	// after UnseenTTL and count against the small caps below, for all
	// such recipients together.
	UnseenTTL         time.Duration // default 24 hours
	MaxUnseenMessages int           // default 2000
	MaxUnseenBytes    int64         // default 32 MiB
}

// Default limits, chosen so that no sender and no made-up recipient can
// fill the disk, the queue as a whole stays within a size an operator
// plans for (docs/OPERATIONS.md), and a stanza still waits through a long
// holiday.
const (
	DefaultMaxMessages       = 1000
	DefaultMaxBytes          = 64 << 20
	DefaultTTL               = 30 * 24 * time.Hour
	DefaultSenderShare       = 0.25
	DefaultMaxSenderMessages = 4096
	DefaultMaxSenderBytes    = 128 << 20
	DefaultMaxTotalMessages  = 100_000
	DefaultMaxTotalBytes     = 1 << 30
	DefaultUnseenTTL         = 24 * time.Hour
	DefaultMaxUnseenMessages = 2000
	DefaultMaxUnseenBytes    = 32 << 20
)

func (l Limits) withDefaults() Limits {
	orDefault(&l.MaxMessages, DefaultMaxMessages)
	orDefault(&l.MaxBytes, DefaultMaxBytes)
	orDefault(&l.TTL, DefaultTTL)
	orDefault(&l.SenderShare, DefaultSenderShare)
	l.SenderShare = min(l.SenderShare, 1)
	orDefault(&l.MaxSenderMessages, DefaultMaxSenderMessages)
	orDefault(&l.MaxSenderBytes, DefaultMaxSenderBytes)
	orDefault(&l.MaxTotalMessages, DefaultMaxTotalMessages)
	orDefault(&l.MaxTotalBytes, DefaultMaxTotalBytes)
	orDefault(&l.UnseenTTL, DefaultUnseenTTL)
	orDefault(&l.MaxUnseenMessages, DefaultMaxUnseenMessages)
	orDefault(&l.MaxUnseenBytes, DefaultMaxUnseenBytes)
	return l
}

// orDefault sets a zero or negative limit to its default.
func orDefault[T int | int64 | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// share returns how many of maxMessages and maxBytes one sender may hold:
// at least one message, so a small cap still lets every sender through.
func (l Limits) share(maxMessages int, maxBytes int64) (messages, bytes uint64) {
	messages = uint64(math.Ceil(l.SenderShare * float64(maxMessages)))
	bytes = uint64(math.Ceil(l.SenderShare * float64(maxBytes)))
	return max(messages, 1), bytes
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

// LimitKind names what a cap counts.
type LimitKind int

// The two things every cap of Limits counts.
const (
	MessageLimit LimitKind = iota + 1 // the Max...Messages fields
	ByteLimit                         // the Max...Bytes fields
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

// LimitScope names whose cap refused a stanza.
type LimitScope int

// The scopes of the caps of Limits, in the order Enqueue checks them.
const (
	RecipientScope   LimitScope = iota + 1 // MaxMessages, MaxBytes
	ShareScope                             // SenderShare of a recipient's caps
	UnseenShareScope                       // SenderShare of the caps of recipients never seen
	UnseenScope                            // MaxUnseenMessages, MaxUnseenBytes
	SenderScope                            // MaxSenderMessages, MaxSenderBytes
	QueueScope                             // MaxTotalMessages, MaxTotalBytes
)

// LimitError is returned by Enqueue when storing the stanza would take the
// queue over a cap. Nothing was stored, for any recipient.
type LimitError struct {
	Scope     LimitScope
	Kind      LimitKind
	Max       int64  // the cap: a number of messages or of bytes
	Recipient string // whose queue is full: for RecipientScope, ShareScope, UnseenShareScope and UnseenScope
	Sender    string // the sender's account: for ShareScope, UnseenShareScope and SenderScope
}

func (e *LimitError) Error() string { return "offline: " + e.Limit() }

// Limit says which cap refused the stanza, in words a sender can act on.
func (e *LimitError) Limit() string {
	switch e.Scope {
	case RecipientScope:
		return fmt.Sprintf("the queue of %s is full (at most %d %s)", e.Recipient, e.Max, e.Kind)
	case ShareScope:
		return fmt.Sprintf("%s has as much queued for %s as one sender may (at most %d %s)", e.Sender, e.Recipient, e.Max, e.Kind)
	case UnseenShareScope:
		return fmt.Sprintf("%s has as much queued for recipients never seen online, such as %s, as one sender may (at most %d %s)", e.Sender, e.Recipient, e.Max, e.Kind)
	case UnseenScope:
		return fmt.Sprintf("%s has never been online, and the queue holds as much as it may for such recipients (at most %d %s in all)", e.Recipient, e.Max, e.Kind)
	case SenderScope:
		return fmt.Sprintf("%s has as much queued as one sender may (at most %d %s)", e.Sender, e.Max, e.Kind)
	case QueueScope:
		return fmt.Sprintf("the queue is full (at most %d %s in all)", e.Max, e.Kind)
	}
	return fmt.Sprintf("LimitScope(%d): at most %d %s", int(e.Scope), e.Max, e.Kind)
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
// each recipient. If any cap would be exceeded, nothing is stored and the
// error is a *LimitError naming the first such cap (in the order of the
// LimitScope constants). The sender is counted by account: the part of it
// before any '/', so that a user's resources share one account's caps. If
// ctx ends before the write was handed to the Writer, nothing is stored;
// once handed over, Enqueue waits for the outcome whatever ctx does, so a
// nil error always means stored.
func (q *Queue) Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error {
	rcpts, prefixes, err := distinctRecipients(recipients)
	if err != nil {
		return err
	}
	account, _, _ := strings.Cut(sender, "/")
	if len(account) > maxRecipient {
		return fmt.Errorf("offline: sender account is %d bytes, more than %d", len(account), maxRecipient)
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
		tot := b.totals()
		seen := make([]bool, len(rcpts))
		for i, r := range rcpts {
			seen[i] = b.isSeen(r)
		}
		if refused = q.check(b, tot, account, rcpts, prefixes, seen, size); refused != nil {
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
		if err := b.addStanza(&tot, id, value, now, size, len(rcpts), account); err != nil {
			return err
		}
		for i, r := range rcpts {
			if err := b.addEntry(&tot, r, prefixes[i], id, now, size, account, seen[i]); err != nil {
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

// check returns the first cap that storing a stanza of size bytes from
// account for rcpts (with their prefixes, and whether each was seen)
// would break.
func (q *Queue) check(b buckets, tot totals, account string, rcpts []string, prefixes [][]byte, seen []bool, size uint64) *LimitError {
	l := q.limits
	over := func(c counter, messages, bytes uint64, maxMessages, maxBytes uint64) *LimitError {
		switch {
		case c.entries+messages > maxMessages:
			return &LimitError{Kind: MessageLimit, Max: int64(maxMessages)}
		case c.bytes+bytes > maxBytes:
			return &LimitError{Kind: ByteLimit, Max: int64(maxBytes)}
		}
		return nil
	}
	shareMessages, shareBytes := l.share(l.MaxMessages, l.MaxBytes)
	unseenShareMessages, unseenShareBytes := l.share(l.MaxUnseenMessages, l.MaxUnseenBytes)
	unseen := counter{tot.unseenEntries, tot.unseenBytes}
	unseenBy := b.counter(b.unseenBy, []byte(account))
	for i, r := range rcpts {
		if e := over(b.count(r), 1, size, uint64(l.MaxMessages), uint64(l.MaxBytes)); e != nil {
			e.Scope, e.Recipient = RecipientScope, r
			return e
		}
		if e := over(b.counter(b.shares, shareKey(prefixes[i], account)), 1, size, shareMessages, shareBytes); e != nil {
			e.Scope, e.Recipient, e.Sender = ShareScope, r, account
			return e
		}
		if seen[i] {
			continue
		}
		if e := over(unseenBy, 1, size, unseenShareMessages, unseenShareBytes); e != nil {
			e.Scope, e.Recipient, e.Sender = UnseenShareScope, r, account
			return e
		}
		if e := over(unseen, 1, size, uint64(l.MaxUnseenMessages), uint64(l.MaxUnseenBytes)); e != nil {
			e.Scope, e.Recipient = UnseenScope, r
			return e
		}
		unseenBy = counter{unseenBy.entries + 1, unseenBy.bytes + size}
		unseen = counter{unseen.entries + 1, unseen.bytes + size}
	}
	n := uint64(len(rcpts))
	if e := over(b.counter(b.senders, []byte(account)), n, size, uint64(l.MaxSenderMessages), uint64(l.MaxSenderBytes)); e != nil {
		e.Scope, e.Sender = SenderScope, account
		return e
	}
	if e := over(counter{tot.entries, tot.bytes}, n, size, uint64(l.MaxTotalMessages), uint64(l.MaxTotalBytes)); e != nil {
		e.Scope = QueueScope
		return e
	}
	return nil
}

// MarkSeen records that recipient exists: the server reported a presence
// of theirs. From then on their entries live for the full TTL and no
// longer count against the caps of recipients never seen; the mark is
// kept in the file, so it survives restarts. A recipient already marked
// costs one key lookup; a new one is written without waiting for the
// commit (the caller is the XMPP read loop), in order with later
// Enqueues. If that write fails, the next MarkSeen tries again; the error
// returned only says it could not be handed to the Writer.
func (q *Queue) MarkSeen(ctx context.Context, recipient string) error {
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
