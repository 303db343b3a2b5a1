package lease_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/internal/lease"
	"mediaslot/testserver"
)

// instance is one mediaslot process's view: its own pool and lease.
type instance struct {
	pool    *pgxpool.Pool
	lease   *lease.Lease
	cancel  context.CancelFunc
	stopped chan struct{}
	running atomic.Bool
	lost    chan struct{} // closed when a run of the work saw its context end
}

func start(t *testing.T, dsn string, running *atomic.Int32, overlap *atomic.Bool) *instance {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{pool: pool, cancel: cancel, stopped: make(chan struct{}), lost: make(chan struct{})}
	in.lease = &lease.Lease{Pool: pool, Name: "sweep", Interval: 50 * time.Millisecond}
	var once sync.Once
	go func() {
		defer close(in.stopped)
		in.lease.Run(ctx, func(ctx context.Context) {
			if running.Add(1) > 1 {
				overlap.Store(true)
			}
			in.running.Store(true)
			<-ctx.Done()
			in.running.Store(false)
			running.Add(-1)
			once.Do(func() { close(in.lost) })
		})
	}()
	t.Cleanup(func() { in.stop(); pool.Close() })
	return in
}

func (in *instance) stop() {
	in.cancel()
	<-in.stopped
}

// TestOneHolderAndTakeover runs three instances: exactly one works at a
// time, and when the holder's session dies (as when its process is
// killed), another takes over and the old one's work is stopped.
func TestOneHolderAndTakeover(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	var running atomic.Int32
	var overlap atomic.Bool
	var all []*instance
	for range 3 {
		all = append(all, start(t, dsn, &running, &overlap))
	}
	holder := func() *instance {
		for _, in := range all {
			if in.running.Load() {
				return in
			}
		}
		return nil
	}
	for round := range 2 {
		if overlap.Load() {
			t.Fatal("two instances ran the work at once")
		}
		testserver.WaitFor(t, 10*time.Second, "one instance to hold the lease", func() bool { return holder() != nil })
		h := holder()
		if !h.lease.Held() {
			t.Fatal("the working instance says it does not hold the lease")
		}
		// Kill the holder's session as a dying process would lose it.
		pg.Exec(t, "", "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()")
		select {
		case <-h.lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the old holder kept working after losing its session", round)
		}
		testserver.WaitFor(t, 10*time.Second, "a holder again", func() bool { return holder() != nil })
		// The old holder may overlap its successor for one interval,
		// between PostgreSQL ending its session and its next check (see
		// the package doc); from here on it has stopped.
		overlap.Store(false)
	}
	// A clean stop hands over too.
	h := holder()
	h.stop()
	testserver.WaitFor(t, 10*time.Second, "another holder after a stop", func() bool {
		n := holder()
		return n != nil && n != h
	})
	if overlap.Load() {
		t.Fatal("two instances ran the work at once")
	}
}
