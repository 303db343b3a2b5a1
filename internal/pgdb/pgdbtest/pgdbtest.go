// Package pgdbtest opens PostgreSQL pools for the tests and benchmarks of
// what keeps its state in the database (slot records, the relay queue).
package pgdbtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/internal/pgdb"
)

// Open returns a pool on dsn opened as `mediaslot serve` opens it (the
// schema migrated), closed when the test ends; closing it sooner is
// allowed.
func Open(tb testing.TB, dsn string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
