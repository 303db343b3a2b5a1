package siblings_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/internal/siblings"
	"mediaslot/testserver"
)

type end struct {
	bus   *siblings.Bus
	notes chan string
	ready chan struct{}
}

func listen(t *testing.T, dsn string) *end {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &end{bus: siblings.New(pool, slog.New(slog.DiscardHandler)), notes: make(chan string, 16), ready: make(chan struct{}, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.bus.Listen(ctx, func(n string) { e.notes <- n }, func() { e.ready <- struct{}{} })
	}()
	t.Cleanup(func() { cancel(); <-done; pool.Close() })
	<-e.ready
	return e
}

func (e *end) want(t *testing.T, note string) {
	t.Helper()
	select {
	case got := <-e.notes:
		if got != note {
			t.Fatalf("got note %q, want %q", got, note)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("note %q never came", note)
	}
}

// Notes reach the instance they are sent to and no other, and keep
// reaching it after its listening connection was cut.
func TestNotes(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	a, b := listen(t, dsn), listen(t, dsn)
	if a.bus.Self() == b.bus.Self() {
		t.Fatal("two instances with one name")
	}
	ctx := context.Background()
	if err := a.bus.Send(ctx, b.bus.Self(), "ms-ack-1"); err != nil {
		t.Fatal(err)
	}
	b.want(t, "ms-ack-1")
	if err := b.bus.Send(ctx, a.bus.Self(), "ms-ack-2"); err != nil {
		t.Fatal(err)
	}
	a.want(t, "ms-ack-2")
	select {
	case n := <-b.notes:
		t.Fatalf("b got a's note %q", n)
	default:
	}

	// Cut every listening session: each listens again by itself.
	pg.Exec(t, "", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
	<-a.ready
	<-b.ready
	if err := a.bus.Send(ctx, b.bus.Self(), "after"); err != nil {
		t.Fatal(err)
	}
	b.want(t, "after")
}
