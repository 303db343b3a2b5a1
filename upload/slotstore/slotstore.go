// Package slotstore is the seam between upload's slot policy and the
// database that remembers slots: the record of each slot from issue to
// expiry, and the accounting the quotas are checked against (bytes stored
// per user, per domain and in all; bytes uploaded per user in the last 24
// hours; the bytes pending slots hold). upload decides what to allow and
// what to tell the client; a Store keeps the facts and answers questions
// about them, each change in one atomic step.
//
// Backends: boltslots (the embedded bbolt file, the default) and pgslots
// (PostgreSQL); slotstoretest is the conformance suite both pass.
package slotstore

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"
)

// Record is what mediaslot remembers of a slot, from issue to expiry. The
// JSON names are those of the records in bbolt files (boltslots).
type Record struct {
	Owner       string    `json:"o"`           // bare JID that requested the slot
	Filename    string    `json:"f"`           // as requested, unescaped
	Size        int64     `json:"s"`           // exact byte count the PUT must send
	ContentType string    `json:"c,omitempty"` // as declared in the request; "" if none
	Purpose     string    `json:"p,omitempty"` // XEP-0363 v1.2 upload purpose
	Issued      time.Time `json:"i"`
	Expires     time.Time `json:"e"`           // end of the PUT window
	DeleteAfter time.Time `json:"x,omitzero"`  // when the file is deleted; zero: never
	Complete    bool      `json:"d,omitempty"` // the bytes are stored
	Stored      time.Time `json:"u,omitzero"`  // when the PUT completed
	StoredType  string    `json:"t,omitempty"` // content type served on GET
}

// Quota holds the byte limits a new slot is checked against; 0 is no limit.
type Quota struct {
	Daily  int64 // uploaded by the owner in the last 24 hours
	User   int64 // stored by the owner
	Domain int64 // stored by the owner's domain
	Total  int64 // stored by everybody
}

// Scope names the quota a request is over.
type Scope int

// The quotas, in the order they are checked.
const (
	Daily Scope = iota
	User
	Domain
	Total
)

// Over is the answer to a slot that does not fit a quota: the facts upload
// words its refusal from.
type Over struct {
	Scope Scope
	Limit int64
	// Used is what counts against the quota besides pending slots: the
	// owner's uploads of the last 24 hours (Daily), or the stored bytes.
	Used int64
	// Held is what pending slots hold against it (not counting the slot
	// asked for when it holds nothing yet).
	Held int64
	// Freed is when enough of Used leaves to let the request pass, counting
	// pending holds as they are: when enough uploads leave the 24-hour
	// window (Daily), when enough files reach their DeleteAfter. Zero when
	// that is not known: files that never expire, or more of them than a
	// store reads to answer (FreedScan).
	Freed time.Time
}

// Store keeps slot records and quota accounting. Every method is atomic;
// the quota checks of Issue and StartUpload are exact under concurrency:
// two requests that race never both pass a quota only one of them fits.
//
// A pending slot holds its size against its owner's quotas from Issue until
// it completes (its size is then used), is forgotten, or its hold ends:
// at its holdUntil, unless an upload to it has started and not ended.
type Store interface {
	// Issue records a new pending slot if its size fits the quotas beside
	// everything used and held, and returns nil; otherwise it records
	// nothing and returns the facts of the first quota (in Scope order) it
	// does not fit. holdUntil is when the slot's hold ends if no upload
	// starts; zero holds it until the slot is completed or forgotten.
	// Once Issue returns, Lookup finds the record, though the record may
	// not be durable yet (a backend says how long it may take).
	Issue(ctx context.Context, id string, rec Record, holdUntil time.Time, q Quota, now time.Time) (*Over, error)
	// Lookup returns a slot's record, or ErrNotFound.
	Lookup(ctx context.Context, id string) (Record, error)
	// StartUpload checks a pending slot against the quotas again (they may
	// be lower now, or its hold may have ended) as Issue does, counting its
	// size once. If it fits, the slot holds its size until EndUpload, even
	// past its holdUntil; if not, the slot's hold ends and the facts are
	// returned.
	StartUpload(ctx context.Context, id string, q Quota, now time.Time) (*Over, error)
	// EndUpload ends what StartUpload started: the slot's hold ends with
	// its holdUntil again.
	EndUpload(ctx context.Context, id string, now time.Time) error
	// Complete records a pending slot's bytes as stored at now, served with
	// storedType, turning its hold into usage, and returns the record;
	// was reports that the slot was complete already (nothing changed).
	// The change is durable when Complete returns.
	Complete(ctx context.Context, id string, now time.Time, storedType string) (rec Record, was bool, err error)
	// Forget removes pending slots and their holds, in one step; complete
	// or unknown slots are left as they are.
	Forget(ctx context.Context, ids ...string) error
	// Expire removes complete slots and uncounts their bytes from the
	// stored quotas (they stay in the daily one: it is about uploading),
	// in one step; pending or unknown slots are left as they are.
	Expire(ctx context.Context, ids ...string) error
	// DuePending lists up to n pending slots whose upload window closed
	// before t (Expires before t), earliest first, with their records.
	// Every slot issued before the call is in what it reads.
	DuePending(ctx context.Context, t time.Time, n int) ([]Slot, error)
	// DueExpired lists up to n complete slots whose DeleteAfter is before
	// t, earliest first.
	DueExpired(ctx context.Context, t time.Time, n int) ([]string, error)
	// StoredBytes returns the bytes of all complete files.
	StoredBytes(ctx context.Context) (int64, error)
}

// Slot is a slot's id and record.
type Slot struct {
	ID string
	Record
}

// ErrNotFound is the error of a slot a Store does not have.
var ErrNotFound = errors.New("no such slot")

// DailyWindow is how long an upload counts against the daily quota.
const DailyWindow = 24 * time.Hour

// FreedScan bounds the files a Store reads to say when a stored quota
// frees enough (Over.Freed): each is a record to read, and a service full
// of small files made every refused request read them all.
const FreedScan = 10000

// DailyStamp is the time an upload completed at t counts from for the
// daily quota: t rounded up to the minute. The uploads of one minute share
// an entry, so that a slot request reads at most 1441 entries of its
// owner's, however many files they uploaded: with one entry an upload,
// 864,000 a day at the default slot rate, each request took 145 ms and 80
// MB. Rounded up, bytes stay counted up to a minute longer, never shorter.
func DailyStamp(t time.Time) time.Time {
	m := t.Truncate(time.Minute)
	if m.Before(t) {
		m = m.Add(time.Minute)
	}
	return m
}

// DomainOf returns the domain of a bare JID.
func DomainOf(owner string) string {
	_, d, _ := strings.Cut(owner, "@")
	return d
}

// Sum adds byte counts (none negative), saturating at math.MaxInt64: a
// slot may be as large as max_file_size allows, and a sum that wrapped
// round to a negative number would pass every quota.
func Sum(n ...int64) int64 {
	var t int64
	for _, x := range n {
		if x > math.MaxInt64-t {
			return math.MaxInt64
		}
		t += x
	}
	return t
}
