package upload

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/boltslots"
)

// recordsBackend is a slot store the tests run on.
type recordsBackend struct {
	name string
	// open makes a fresh database for f and sets f.reopen (and the
	// backend's own fields of f).
	open func(t *testing.T, f *fixture, direct bool)
}

// boltRecords keeps slot records in a bbolt file behind a group-commit
// Writer, as `mediaslot serve` does by default.
var boltRecords = recordsBackend{name: "bbolt", open: func(t *testing.T, f *fixture, direct bool) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	t.Cleanup(func() { w.Close(); db.Close() })
	f.db, f.writer = db, w
	f.reopen = func(t *testing.T) slotstore.Store {
		t.Helper()
		if err := w.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		rs, err := boltslots.Open(db, w, boltslots.Options{Direct: direct})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
}}

// recordsBackends lists the slot stores the tests that run on each run on.
func recordsBackends(t *testing.T) []recordsBackend {
	return []recordsBackend{boltRecords}
}
