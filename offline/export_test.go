package offline

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What the external tests (conformance_test.go, crash_test.go, bench_test.go) need of the
// package's insides.

// SetNow replaces the queue's clock.
func (q *BoltQueue) SetNow(now func() time.Time) { q.now = now }

// CheckConsistent fails the test if q's indexes and counters disagree
// with its entries, or a Drain left its lock behind.
func CheckConsistent(tb testing.TB, q *BoltQueue) {
	tb.Helper()
	checkConsistent(tb, q.db)
	if r, u := q.drains.Held(); r != 0 || u != 0 {
		tb.Errorf("drain locks of %d recipients left behind, %d users", r, u)
	}
}

// DBOption is a way of opening the file worth testing.
type DBOption = dbOption

// DBOptions are those ways.
var DBOptions = dbOptions

// OpenFile opens the queue in the bbolt file at path, as the server does,
// closed when the test ends.
func OpenFile(tb testing.TB, path string, opt *bolt.Options, l Limits) (*BoltQueue, func()) {
	q := openQueue(tb, path, opt, l)
	return q.BoltQueue, func() {
		q.w.Close()
		if err := q.db.Close(); err != nil {
			tb.Error(err)
		}
	}
}
