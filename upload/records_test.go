package upload

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/internal/pgdb/pgdbtest"
	"mediaslot/store/disk"
	"mediaslot/testserver"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/boltslots"
	"mediaslot/upload/slotstore/pgslots"
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

// pgRecords keeps slot records in a fresh database of pg for each fixture.
func pgRecords(pg *testserver.Postgres) recordsBackend {
	return recordsBackend{name: "postgres", open: func(t *testing.T, f *fixture, _ bool) {
		t.Helper()
		dsn := pg.NewDB(t)
		f.reopen = func(t *testing.T) slotstore.Store {
			t.Helper()
			return pgslots.New(pgdbtest.Open(t, dsn))
		}
	}}
}

// forEachRecords runs test with slot records in bbolt, then in PostgreSQL
// (a private server, skipped where PostgreSQL is not installed unless
// integration tests are required).
func forEachRecords(t *testing.T, test func(t *testing.T, b recordsBackend)) {
	t.Run("bbolt", func(t *testing.T) { test(t, boltRecords) })
	t.Run("postgres", func(t *testing.T) { test(t, pgRecords(testserver.StartPostgres(t))) })
}

// newDiskFixture is a fixture on a disk store with slot records in b.
func newDiskFixture(t *testing.T, b recordsBackend) *fixture {
	t.Helper()
	st, err := disk.New(filepath.Join(t.TempDir(), "files"))
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, b, st, Download{})
}
