package pgdb

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"mediaslot/testserver"
)

// testMigrations: a table and a row, so that a migration applied twice
// shows (a second CREATE fails, a second INSERT doubles the row).
func testMigrations(t testing.TB, n int) []migration {
	t.Helper()
	fsys := fstest.MapFS{
		"migrations/README.md":      {Data: []byte("not a migration")},
		"migrations/0001_t.sql":     {Data: []byte("CREATE TABLE t (v integer); CREATE SEQUENCE t_seq")},
		"migrations/0002_row.sql":   {Data: []byte("INSERT INTO t VALUES (1)")},
		"migrations/0003_index.sql": {Data: []byte("CREATE INDEX t_v ON t (v)")},
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return ms[:n]
}

// The repository's migrations load: names, versions, no duplicates.
func TestEmbeddedMigrations(t *testing.T) {
	ms, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) > 0 && LatestVersion() != ms[len(ms)-1].version {
		t.Errorf("LatestVersion %d, last file %s", LatestVersion(), ms[len(ms)-1].name)
	}
}

func TestLoadMigrations(t *testing.T) {
	ms := testMigrations(t, 3)
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %d: %s has version %d", i, m.name, m.version)
		}
	}
	for name, want := range map[string]string{
		"0001_Upper.sql": "NNNN_name.sql",
		"1_short.sql":    "NNNN_name.sql",
		"0000_zero.sql":  "start at 0001",
	} {
		_, err := loadMigrations(fstest.MapFS{"migrations/" + name: {}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	_, err := loadMigrations(fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/0001_b.sql": {}})
	if err == nil || !strings.Contains(err.Error(), "same version") {
		t.Errorf("duplicate version: %v", err)
	}
}

// Instances starting at once on a fresh database apply each migration
// exactly once (the advisory lock); a later start with more migrations
// applies only the new ones; an older binary is refused.
func TestOpenConcurrent(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	ctx := t.Context()

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			pool, err := open(ctx, dsn, testMigrations(t, 2))
			if err == nil {
				pool.Close()
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := query(t, dsn, "SELECT count(*) FROM t"); got != 1 {
		t.Errorf("%d rows: a migration ran more than once", got)
	}
	if got := query(t, dsn, "SELECT count(*) FROM "+versionTable); got != 2 {
		t.Errorf("%d versions recorded, want 2", got)
	}

	pool, err := open(ctx, dsn, testMigrations(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if got := query(t, dsn, "SELECT max(version) FROM "+versionTable); got != 3 {
		t.Errorf("version %d after the third migration", got)
	}

	_, err = open(ctx, dsn, testMigrations(t, 2))
	var se *SchemaError
	if !errors.As(err, &se) || se.Version != 3 || se.Latest != 2 {
		t.Fatalf("an older binary on a newer schema: %v", err)
	}
	if !strings.Contains(err.Error(), "newer mediaslot") {
		t.Errorf("the message does not say what happened: %v", err)
	}
}

// Open's errors say what to fix, like Check's.
func TestOpenUnreachable(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	pg.Stop(t)
	_, err := Open(t.Context(), dsn)
	var pe *ProbeError
	if !errors.As(err, &pe) || pe.Probe != "reach" {
		t.Fatalf("Open on a stopped server: %v", err)
	}
}

func query(t testing.TB, dsn, sql string) int {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
