package main

import (
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/config"
	"mediaslot/internal/pgdb"
	"mediaslot/testserver"
)

// openData opens what data.backend names: the bbolt file in data.dir, or
// the PostgreSQL database of data.dsn with the password set apart, its
// schema migrated; a wrong password fails at start with what to fix.
func TestOpenData(t *testing.T) {
	ctx := t.Context()
	cfg := config.Default()
	cfg.Data.Dir = t.TempDir()
	d, err := openData(ctx, cfg)
	if err != nil || d.db == nil || d.writer == nil || d.pool != nil {
		t.Fatalf("bbolt: %+v, %v", d, err)
	}
	if d.db.Path() != filepath.Join(cfg.Data.Dir, "mediaslot.db") {
		t.Errorf("bbolt file at %s", d.db.Path())
	}
	d.Close(nil)

	pg := testserver.StartPostgres(t)
	u, err := url.Parse(pg.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(pg.User)
	cfg.Data.Backend, cfg.Data.DSN, cfg.Data.Password = config.BackendPostgres, u.String(), pg.Password
	d, err = openData(ctx, cfg)
	if err != nil || d.pool == nil || d.db != nil {
		t.Fatalf("postgres: %+v, %v", d, err)
	}
	var version int
	if err := d.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM mediaslot_schema_version").Scan(&version); err != nil || version != pgdb.LatestVersion() {
		t.Errorf("schema version %d (%v), want %d", version, err, pgdb.LatestVersion())
	}
	d.Close(nil)

	cfg.Data.Password = "wrong"
	_, err = openData(ctx, cfg)
	var pe *pgdb.ProbeError
	if !errors.As(err, &pe) || pe.Probe != "login" {
		t.Errorf("a wrong password: %v", err)
	}
}

// db check reads bbolt files: on a configuration whose data is in
// PostgreSQL it says where to look instead of reporting a missing file.
func TestDBCheckPostgresConfig(t *testing.T) {
	cfg, _ := dbConfig(t, t.TempDir())
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "backend = \"postgres\"\ndsn = \"postgres://ms@127.0.0.1/ms\"\n"...)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = runDB(t.Context(), []string{"check", "--config", cfg}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL") || !strings.Contains(err.Error(), "--check-config") {
		t.Errorf("db check on a postgres configuration: %v", err)
	}
}
