package pgslots

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/internal/pgdb"
	"mediaslot/testserver"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/slotstoretest"
)

// open returns a migrated pool on dsn, closed with the test.
func open(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestConformance(t *testing.T) {
	pg := testserver.StartPostgres(t)
	slotstoretest.Run(t, func(t *testing.T) slotstoretest.Opener {
		dsn := pg.NewDB(t)
		return func(t *testing.T) slotstore.Store { return New(open(t, dsn)) }
	})
}
