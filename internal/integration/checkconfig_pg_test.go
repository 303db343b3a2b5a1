package integration

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// --check-config with data.backend = "postgres" against a real cluster:
// all well (the password from MEDIASLOT_DATA_PASSWORD, then from
// password_file), then each probe broken in turn, with the words it
// promises; the check leaves the database as it found it.
func TestCheckConfigPostgres(t *testing.T) {
	srv := testserver.Prosody(t)
	pg := testserver.StartPostgres(t)
	base, _ := writeConfig(t, srv, "")
	withDSN := func(t *testing.T, dsn, more string) string {
		return edit(t, base, `dir = "data"`, fmt.Sprintf("dir = \"data\"\nbackend = \"postgres\"\ndsn = %q\n%s", dsn, more))
	}
	u, err := url.Parse(pg.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	dsn := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pg.User, pg.Addr, db)
	env := func(pw string) func(*exec.Cmd) {
		return func(c *exec.Cmd) { c.Env = append(os.Environ(), "MEDIASLOT_DATA_PASSWORD="+pw) }
	}

	t.Run("all ok", func(t *testing.T) {
		r := runCheckConfig(t, withDSN(t, dsn, ""), env(pg.Password))
		r.failed(t, 0)
		r.want(t, "database", "ok", "PostgreSQL 15", pg.User+"@"+pg.Addr+"/"+db, "schema version 0")
		pw := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pw, []byte(pg.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = runCheckConfig(t, withDSN(t, dsn, fmt.Sprintf("password_file = %q", pw)))
		r.failed(t, 0)
		pg.Exec(t, db, "DO $$ BEGIN IF to_regclass('mediaslot_schema_version') IS NOT NULL THEN RAISE 'the check created the schema'; END IF; END $$")
	})
	for _, c := range []struct {
		name, dsn, password string
		words               []string
	}{
		{"wrong password", dsn, "wrong", []string{"postgres login", "refused the password", "MEDIASLOT_DATA_PASSWORD"}},
		{"nothing listening", fmt.Sprintf("postgres://%s@%s/%s", pg.User, freePort(t), db), pg.Password, []string{"postgres reach", "host and port of data.dsn"}},
		{"no database", fmt.Sprintf("postgres://%s@%s/nosuch?sslmode=disable", pg.User, pg.Addr), pg.Password, []string{"postgres database", `CREATE DATABASE "nosuch"`}},
		{"no privileges", fmt.Sprintf("postgres://plain@%s/%s?sslmode=disable", pg.Addr, db), "pw", []string{"postgres privileges", "GRANT USAGE, CREATE ON SCHEMA"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "no privileges" {
				pg.Exec(t, "postgres", "CREATE ROLE plain LOGIN PASSWORD 'pw'")
			}
			r := runCheckConfig(t, withDSN(t, c.dsn, ""), env(c.password))
			r.failed(t, 1)
			r.want(t, "database", "FAILED", c.words...)
		})
	}
}
