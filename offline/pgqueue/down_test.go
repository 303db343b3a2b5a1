package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mediaslot/offline"
	"mediaslot/testserver"
)

// What the relay's read loop asks of the queue must not wait for a slow
// database, and what it cannot know must not reorder (issue 15, point 5):
// with the writer stuck behind a lock, MarkSeen (called on presences)
// returns at once, dropping the marks that find the writer's queue full;
// with the database down, Pending says entries may be waiting, so that a
// message for an online recipient is queued behind them (and refused
// while the database is down), not delivered ahead of them.
func TestSlowDatabaseAnswers(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	ctx := context.Background()
	q, pool := openQueue(t, dsn, offline.Limits{}, time.Now)
	defer func() { q.Close(); pool.Close() }()

	// Another session holds the row every writing transaction locks
	// first: the writer's next commit waits for it.
	lock, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM relay_state FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	enqueued := make(chan error, 1)
	go func() {
		enqueued <- q.Enqueue(ctx, "alice@example.net", []string{"bob@example.net"}, []byte("<message/>"))
	}()
	testserver.WaitFor(t, 10*time.Second, "the writer waiting for the lock", func() bool {
		var n int
		err := lock.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n > 0
	})

	const extra = 10
	busy := make(chan int, 1)
	go func() {
		n := 0
		for i := range maxBatch + extra {
			if errors.Is(q.MarkSeen(ctx, fmt.Sprintf("u%d@example.net", i)), errWriterBusy) {
				n++
			}
		}
		busy <- n
	}()
	select {
	case n := <-busy:
		if n != extra {
			t.Errorf("%d marks found the writer busy, want %d (those past its queue of %d)", n, extra, maxBatch)
		}
	case <-time.After(5 * time.Second):
		_ = tx.Rollback(ctx)
		t.Fatal("MarkSeen waited for a writer stuck on the database")
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-enqueued; err != nil {
		t.Fatalf("Enqueue once the lock is gone: %v", err)
	}
	if !q.Pending("bob@example.net") || q.Pending("carol@example.net") {
		t.Fatal("Pending with the database up: want bob's entry and nothing for carol")
	}

	pg.Stop(t)
	if !q.Pending("carol@example.net") {
		t.Error("Pending with the database down says nothing is queued; a message could overtake queued ones")
	}
}
