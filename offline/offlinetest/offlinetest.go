// Package offlinetest opens relay queues, bbolt or PostgreSQL, for the
// tests of the packages that use one (the relay, the component link, the
// benchmarks).
package offlinetest

import (
	"context"
	"testing"

	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/internal/pgdb/pgdbtest"
	"mediaslot/offline"
	"mediaslot/offline/pgqueue"
)

// New returns a queue with limits l in a bbolt file of its own, opened with
// the options `mediaslot serve` uses and written through group commit as
// serve writes; both close when the test ends.
func New(tb testing.TB, l offline.Limits) *offline.BoltQueue {
	tb.Helper()
	db, w := dbfiletest.New(tb)
	q, err := offline.Open(db, w, l)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

// Postgres returns the queue (and presences) with limits l in the
// PostgreSQL database dsn, on a pool of its own as each instance of a
// cluster has, the schema migrated as serve does; both close when the test
// ends.
func Postgres(tb testing.TB, dsn string, l offline.Limits) *pgqueue.Queue {
	tb.Helper()
	q, err := pgqueue.Open(context.Background(), pgdbtest.Open(tb, dsn), l)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(q.Close)
	return q
}
