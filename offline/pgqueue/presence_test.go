package pgqueue_test

import (
	"context"
	"slices"
	"testing"

	"mediaslot/internal/pgdb"
	"mediaslot/offline"
	"mediaslot/offline/pgqueue"
	"mediaslot/offline/queuetest"
	"mediaslot/testserver"
)

// openQueue opens the queue (and presence) of a migrated database.
func openQueue(t *testing.T, dsn string) *pgqueue.Queue {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	q, err := pgqueue.Open(context.Background(), pool, offline.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); pool.Close() })
	return q
}

func TestPresence(t *testing.T) {
	pg := testserver.StartPostgres(t)
	queuetest.TestPresence(t, func(t *testing.T) offline.Presence { return openQueue(t, pg.NewDB(t)) })
}

// Two instances on one database see one presence table (ejabberd hands a
// user's presences to any instance), and Waiting lists the online users
// with entries, whose drain a dead instance may have left unfinished.
func TestPresenceShared(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	a, b := openQueue(t, dsn), openQueue(t, dsn)
	ctx := context.Background()
	if err := a.Update(ctx, "bob@example.net", "bob@example.net/phone", true); err != nil {
		t.Fatal(err)
	}
	if online, _, err := b.State(ctx, "bob@example.net"); err != nil || !online {
		t.Fatalf("the sibling's State = %v, %v", online, err)
	}
	for _, r := range []string{"bob@example.net", "carol@example.net"} {
		if err := b.Enqueue(ctx, "alice@example.net/x", []string{r}, []byte("<message/>")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Update(ctx, "dave@example.net", "dave@example.net/x", true); err != nil { // online, nothing queued
		t.Fatal(err)
	}
	got, err := b.Waiting(ctx, 10)
	if err != nil || !slices.Equal(got, []string{"bob@example.net"}) {
		t.Fatalf("Waiting = %v, %v; want bob only (carol is offline, dave has nothing queued)", got, err)
	}
	if err := b.Update(ctx, "bob@example.net", "bob@example.net/phone", false); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Waiting(ctx, 10); err != nil || len(got) != 0 {
		t.Fatalf("Waiting after bob left = %v, %v", got, err)
	}
}
