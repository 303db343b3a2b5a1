package integration

import (
	"fmt"
	"testing"

	"mediaslot/testserver"
)

// The slot, upload and relay tests run on both data backends (issue 15,
// point 6), as subtests named bbolt and postgres: the same promises, the
// same real clients and servers, only where the slot records, quotas and
// relay queue live differs.

// forEachBackend runs f as the subtests bbolt and postgres. f appends backend
// to the extra config of its mediaslot (writeConfig): "" for bbolt, the
// default; for postgres the [data] section of a new database in a private
// cluster of its own, started in a fraction of a second from the cached
// template (testserver.StartPostgres), so that tests share nothing.
func forEachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	t.Helper()
	t.Run("bbolt", func(t *testing.T) { f(t, "") })
	t.Run("postgres", func(t *testing.T) { f(t, postgresData(t, testserver.StartPostgres(t))) })
}

// postgresData is the [data] section of a mediaslot whose state is in a new
// database of pg (the token key stays in data/).
func postgresData(t *testing.T, pg *testserver.Postgres) string {
	t.Helper()
	return fmt.Sprintf("\n[data]\ndir = \"data\"\nbackend = \"postgres\"\ndsn = %q\n", pg.NewDB(t))
}
