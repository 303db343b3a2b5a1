// Package offline keeps media stanzas for recipients who are offline
// until they come back: the relay's durable queue. Queue is what the relay
// uses; BoltQueue (this package) keeps it in mediaslot's bbolt file, and
// offline/pgqueue in PostgreSQL. offline/queuetest is the conformance
// suite both pass, so the promises below hold whichever is configured.
//
// The promise: once Enqueue returns nil, the stanza is committed (on disk,
// or in the database) and Drain will hand it to its deliver function at
// least once, in the order Enqueue accepted it relative to the recipient's
// other stanzas, unless it is older than the TTL by then (or than the
// shorter UnseenTTL, for a recipient MarkSeen was never told about): Purge
// removes such entries, and Drain drops them instead of delivering them.
// "At least once" because an entry is deleted only after deliver returned
// nil, in a later transaction: if the process dies between the two, the
// entry is delivered again after restart. Deletions of one Drain batch (up
// to DrainBatch entries) commit together, or in a few transactions, so a
// crash can repeat up to one batch.
//
// The package knows nothing of XMPP: a stanza is opaque bytes and a
// recipient is a string (the xmpp package passes bare JIDs). Only the caps
// of one sender read its string: the part before any '/' is the account.
package offline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Queue is the relay's durable per-recipient queue of stanzas. Its
// methods are safe for concurrent use.
type Queue interface {
	// Enqueue queues stanza for each recipient, all or none, and returns
	// once that is committed. The stanza is stored once however many
	// recipients it has; a recipient listed twice gets it once. Limits
	// count it in full for each recipient. If any cap would be exceeded,
	// nothing is stored and the error is a *LimitError naming the first
	// such cap (in the order of the LimitScope constants). The sender is
	// counted by account (Account). If ctx ends before the write was
	// handed on, nothing is stored; once handed on, Enqueue waits for the
	// outcome whatever ctx does, so a nil error always means stored.
	Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error

	// Drain calls deliver for each entry of recipient, oldest first, until
	// none is left, and returns how many were delivered. An entry is
	// deleted only after deliver returned nil for it and, if confirm is
	// not nil, a later confirm returned nil: deliver may then hand an
	// entry on without waiting until it is safe, and confirm waits until
	// everything handed on so far is (the relay writes deliveries to the
	// server and confirms ConfirmEvery of them with one ping). An entry older than
	// the TTL is deleted without being delivered, as Purge would have.
	// Drain stops at the first error from deliver, or when ctx ends, and
	// returns that error; that entry and all later ones stay queued. If
	// deleting delivered entries fails, they will be delivered again, and
	// the error says so. deliver runs outside any transaction, so it may
	// block. Entries enqueued while Drain runs are delivered by it too.
	// Drains of one recipient run one at a time: a second waits for the
	// first.
	Drain(ctx context.Context, recipient string, deliver func(Entry) error, confirm func() error) (delivered int, err error)

	// Pending reports whether recipient has queued entries; a backend
	// that cannot tell says true, so that a message is queued behind
	// entries that may be there rather than delivered ahead. It is
	// called for every available presence, so it must be cheap.
	Pending(recipient string) bool

	// MarkSeen records that recipient exists: the server reported a
	// presence of theirs. From then on their entries live for the full
	// TTL and no longer count against the caps of recipients never seen;
	// the mark is durable. It does not wait for the commit (the caller is
	// the XMPP read loop) but takes effect before any later Enqueue or
	// Purge. The error only says it could not be handed on; a failed write
	// is retried by the next MarkSeen.
	MarkSeen(ctx context.Context, recipient string) error

	// Purge deletes the entries accepted before now minus the TTL, and
	// those of recipients never seen accepted before now minus the
	// UnseenTTL, in bounded batches, and returns how many it deleted.
	Purge(ctx context.Context, now time.Time) (int, error)

	// Stats returns the queue's totals and the oldest entry's acceptance
	// time.
	Stats() (Stats, error)
}

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

// WithDefaults returns l with every zero or negative field set to its
// default, as every backend applies it.
func (l Limits) WithDefaults() Limits {
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

// NoLimits lets a benchmark, a tool or a test of scale queue as much as
// it likes.
var NoLimits = Limits{
	MaxMessages: 1 << 30, MaxBytes: 1 << 50, SenderShare: 1,
	MaxSenderMessages: 1 << 30, MaxSenderBytes: 1 << 50,
	MaxTotalMessages: 1 << 30, MaxTotalBytes: 1 << 50,
	MaxUnseenMessages: 1 << 30, MaxUnseenBytes: 1 << 50,
}

// MaxRecipient is the longest a recipient or a sender's account may be:
// the longest a JID can be (RFC 7622).
const MaxRecipient = 3071

// MaxSender is the longest a sender may be, resource included.
const MaxSender = math.MaxUint16

// MaxStanza is the largest stanza a queue stores.
const MaxStanza = math.MaxUint32

var errRecipient = fmt.Errorf("offline: recipient must be 1 to %d bytes of UTF-8 without NUL", MaxRecipient)

// CheckRecipient returns an error if r cannot be a recipient: a JID is
// never empty, longer than MaxRecipient, invalid UTF-8 or holding NUL (a
// database's text columns refuse the last two, and one refused row would
// fail the other Enqueues committed with it).
func CheckRecipient(r string) error {
	if r == "" || len(r) > MaxRecipient || !validText(r) {
		return errRecipient
	}
	return nil
}

// validText reports whether s is UTF-8 without NUL.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Account returns the account a sender's caps are counted by: the part
// before any '/', so that a user's resources share one account's caps.
func Account(sender string) string {
	account, _, _ := strings.Cut(sender, "/")
	return account
}

// Message is one Enqueue's input, checked and normalised by NewMessage.
type Message struct {
	Sender     string
	Account    string
	Recipients []string // distinct, sorted
	Stanza     []byte
}

// NewMessage checks what Enqueue was given, as every backend must before
// storing anything, and returns its recipients without repeats, sorted.
func NewMessage(sender string, recipients []string, stanza []byte) (Message, error) {
	rcpts := slices.Clone(recipients)
	slices.Sort(rcpts)
	rcpts = slices.Compact(rcpts)
	if len(rcpts) == 0 {
		return Message{}, errors.New("offline: no recipients")
	}
	for _, r := range rcpts {
		if err := CheckRecipient(r); err != nil {
			return Message{}, err
		}
	}
	account := Account(sender)
	if len(account) > MaxRecipient {
		return Message{}, fmt.Errorf("offline: sender account is %d bytes, more than %d", len(account), MaxRecipient)
	}
	if len(sender) > MaxSender {
		return Message{}, fmt.Errorf("offline: sender is %d bytes, more than %d", len(sender), MaxSender)
	}
	if !validText(sender) {
		return Message{}, errors.New("offline: sender must be UTF-8 without NUL")
	}
	if uint64(len(stanza)) > MaxStanza {
		return Message{}, fmt.Errorf("offline: stanza is %d bytes, more than %d", len(stanza), uint64(MaxStanza))
	}
	return Message{Sender: sender, Account: account, Recipients: rcpts, Stanza: stanza}, nil
}

// Counter is what a cap counts: entries and bytes.
type Counter struct {
	Entries, Bytes uint64
}

// Usage is what the caps read for one Enqueue: the counters as they are
// before it, in the backend's transaction.
type Usage struct {
	// Recipients holds one per recipient of the Message, in its order.
	Recipients []RecipientUsage
	Sender     Counter // all the account has queued; bytes of each stanza once
	UnseenBy   Counter // what the account has queued for recipients never seen
	Unseen     Counter // what all recipients never seen hold
	Total      Counter // the whole queue; bytes of each stanza once
}

// RecipientUsage is one recipient's part of Usage.
type RecipientUsage struct {
	Seen  bool
	Queue Counter // all the recipient holds
	Share Counter // what the account has queued for the recipient
}

// Check returns the first cap that storing m would break, given the
// counters in u, or nil. Every backend calls it with counters it holds
// locked, so the caps are exact under concurrency.
func (l Limits) Check(m Message, u Usage) *LimitError {
	size := uint64(len(m.Stanza))
	over := func(c Counter, messages uint64, maxMessages, maxBytes uint64) *LimitError {
		switch {
		case c.Entries+messages > maxMessages:
			return &LimitError{Kind: MessageLimit, Max: int64(maxMessages)}
		case c.Bytes+size > maxBytes:
			return &LimitError{Kind: ByteLimit, Max: int64(maxBytes)}
		}
		return nil
	}
	shareMessages, shareBytes := l.share(l.MaxMessages, l.MaxBytes)
	unseenShareMessages, unseenShareBytes := l.share(l.MaxUnseenMessages, l.MaxUnseenBytes)
	unseen, unseenBy := u.Unseen, u.UnseenBy
	for i, r := range m.Recipients {
		ru := u.Recipients[i]
		if e := over(ru.Queue, 1, uint64(l.MaxMessages), uint64(l.MaxBytes)); e != nil {
			e.Scope, e.Recipient = RecipientScope, r
			return e
		}
		if e := over(ru.Share, 1, shareMessages, shareBytes); e != nil {
			e.Scope, e.Recipient, e.Sender = ShareScope, r, m.Account
			return e
		}
		if ru.Seen {
			continue
		}
		if e := over(unseenBy, 1, unseenShareMessages, unseenShareBytes); e != nil {
			e.Scope, e.Recipient, e.Sender = UnseenShareScope, r, m.Account
			return e
		}
		if e := over(unseen, 1, uint64(l.MaxUnseenMessages), uint64(l.MaxUnseenBytes)); e != nil {
			e.Scope, e.Recipient = UnseenScope, r
			return e
		}
		unseenBy = Counter{unseenBy.Entries + 1, unseenBy.Bytes + size}
		unseen = Counter{unseen.Entries + 1, unseen.Bytes + size}
	}
	n := uint64(len(m.Recipients))
	if e := over(u.Sender, n, uint64(l.MaxSenderMessages), uint64(l.MaxSenderBytes)); e != nil {
		e.Scope, e.Sender = SenderScope, m.Account
		return e
	}
	if e := over(u.Total, n, uint64(l.MaxTotalMessages), uint64(l.MaxTotalBytes)); e != nil {
		e.Scope = QueueScope
		return e
	}
	return nil
}
