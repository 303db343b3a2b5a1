package pgslots

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// Instances that share one database (issue 16) share its quotas exactly:
// slot requests of one owner racing through two pools (two instances) are
// granted as many as fit, round after round, also when the service's
// quota is the one that fills.
func TestQuotaExactAcrossInstances(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	stores := []*Store{New(open(t, dsn)), New(open(t, dsn))}
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	const racers, fit, size = 16, 3, 1000
	for round := range 20 {
		now := t0.Add(time.Duration(round) * time.Hour) // the last round's holds ended
		q := slotstore.Quota{User: fit * size}
		if round%2 == 1 {
			q = slotstore.Quota{Total: fit * size}
		}
		var wg sync.WaitGroup
		var granted atomic.Int32
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				r := slotstore.Record{Owner: fmt.Sprintf("u%d@example.net", round), Filename: "f", Size: size, Issued: now, Expires: now.Add(5 * time.Minute)}
				o, err := stores[i%2].Issue(ctx, fmt.Sprintf("%04d%028x", round, i), r, r.Expires, q, now)
				if err != nil {
					t.Error(err)
				} else if o == nil {
					granted.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := granted.Load(); n != fit {
			t.Fatalf("round %d (%+v): %d of %d racing slots granted through two instances, want %d", round, q, n, racers, fit)
		}
	}
}
