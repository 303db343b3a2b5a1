// Package offlinetest opens relay queues for the tests of the packages
// that use one (the relay, the component link).
package offlinetest

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
	"mediaslot/offline"
)

// New returns a queue with limits l in a bbolt file of its own, opened with
// the options `mediaslot serve` uses and written through group commit as
// serve writes; both close when the test ends.
func New(tb testing.TB, l offline.Limits) *offline.BoltQueue {
	tb.Helper()
	opts := dbfile.Options()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "mediaslot.db"), 0o600, &opts)
	if err != nil {
		tb.Fatal(err)
	}
	w := groupcommit.New(db)
	tb.Cleanup(func() { w.Close(); db.Close() })
	q, err := offline.Open(db, w, l)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}
