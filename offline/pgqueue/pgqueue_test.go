package pgqueue

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/internal/pgdb"
	"mediaslot/offline"
	"mediaslot/offline/queuetest"
	"mediaslot/testserver"
)

// TestConformance runs the suite every backend passes on a real
// PostgreSQL, each subtest in a database of its own, with a second Queue
// on the same database standing for a second mediaslot process.
func TestConformance(t *testing.T) {
	c := testserver.StartPostgres(t)
	queuetest.Run(t, func(t testing.TB, l offline.Limits, now func() time.Time) queuetest.Instance {
		return openInstance(t, c.NewDB(t), l, now)
	})
}

// openInstance opens a Queue on the database at dsn, with its own pool,
// closed when the test ends.
func openInstance(t testing.TB, dsn string, l offline.Limits, now func() time.Time) queuetest.Instance {
	t.Helper()
	q, pool := openQueue(t, dsn, l, now)
	closed := false
	t.Cleanup(func() {
		if !closed {
			q.Close()
			pool.Close()
		}
	})
	return queuetest.Instance{
		Queue: q,
		Check: func(t testing.TB) { checkConsistent(t, pool) },
		Restart: func(t testing.TB) queuetest.Instance {
			q.Close()
			pool.Close()
			closed = true
			return openInstance(t, dsn, l, now)
		},
		Another: func(t testing.TB) queuetest.Instance { return openInstance(t, dsn, l, now) },
	}
}

// openPool opens a pool on dsn as serve does, migrating the schema.
func openPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func openQueue(t testing.TB, dsn string, l offline.Limits, now func() time.Time) (*Queue, *pgxpool.Pool) {
	t.Helper()
	pool := openPool(t, dsn)
	q, err := Open(context.Background(), pool, l)
	if err != nil {
		pool.Close()
		t.Fatal(err)
	}
	q.now = now
	return q, pool
}

// checkConsistent recounts every counter from the entries and stanzas and
// fails the test where a stored one disagrees.
func checkConsistent(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct{ what, sql string }{
		{"totals", `SELECT s.entries - (SELECT count(*) FROM relay_entries),
			s.stanzas - (SELECT count(*) FROM relay_stanzas),
			s.bytes - (SELECT coalesce(sum(size), 0) FROM relay_stanzas),
			s.recipients - (SELECT count(DISTINCT recipient) FROM relay_entries),
			s.unseen_entries - (SELECT count(*) FROM relay_entries WHERE unseen),
			s.unseen_bytes - (SELECT coalesce(sum(st.size), 0) FROM relay_entries e JOIN relay_stanzas st ON st.id = e.seq WHERE e.unseen),
			(SELECT count(*) FROM relay_stanzas WHERE id > s.last_seq)
			FROM relay_state s`},
		{"holders", `SELECT count(*) FROM relay_stanzas s
			WHERE s.holders <> (SELECT count(*) FROM relay_entries e WHERE e.seq = s.id) OR s.holders = 0`},
		{"entries without stanza", `SELECT count(*) FROM relay_entries e WHERE NOT EXISTS (SELECT 1 FROM relay_stanzas s WHERE s.id = e.seq)`},
		{"unseen flags", `SELECT count(*) FROM relay_entries e LEFT JOIN relay_recipients r USING (recipient)
			WHERE r.recipient IS NULL OR e.unseen <> (r.seen IS NULL) OR e.accepted <> (SELECT accepted FROM relay_stanzas WHERE id = e.seq)`},
		{"recipients", `SELECT count(*) FROM relay_recipients r FULL JOIN (
				SELECT e.recipient, count(*) n, sum(s.size) b FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq GROUP BY e.recipient
			) x USING (recipient)
			WHERE coalesce(r.entries, -1) <> coalesce(x.n, 0) OR coalesce(r.bytes, -1) <> coalesce(x.b, 0)
				OR (x.n IS NULL AND r.seen IS NULL)`},
		{"senders", `SELECT count(*) FROM relay_senders f FULL JOIN (
				SELECT s.account, count(*) n,
					count(*) FILTER (WHERE e.unseen) un, coalesce(sum(s.size) FILTER (WHERE e.unseen), 0) ub
				FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq GROUP BY s.account
			) x USING (account)
			LEFT JOIN (SELECT account, sum(size) b FROM relay_stanzas GROUP BY account) y USING (account)
			WHERE f.account IS NULL OR x.account IS NULL OR f.entries <> x.n OR f.bytes <> y.b
				OR f.unseen_entries <> x.un OR f.unseen_bytes <> x.ub`},
		{"shares", `SELECT count(*) FROM relay_shares p FULL JOIN (
				SELECT e.recipient, s.account, count(*) n, sum(s.size) b
				FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq GROUP BY e.recipient, s.account
			) x USING (recipient, account)
			WHERE p.entries IS NULL OR x.n IS NULL OR p.entries <> x.n OR p.bytes <> x.b`},
	} {
		rows, err := pool.Query(ctx, c.sql)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		nums, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) ([]int64, error) {
			v := make([]int64, len(r.FieldDescriptions()))
			p := make([]any, len(v))
			for i := range v {
				p[i] = &v[i]
			}
			return v, r.Scan(p...)
		})
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		for _, n := range nums {
			if n != 0 {
				t.Errorf("%s inconsistent: %v", c.what, nums)
				break
			}
		}
	}
}

// Two processes (two Queues with their own pools) never drain one
// recipient at once: the second waits on the advisory lock, seen in
// pg_locks, until the first is done, and then finds nothing to deliver
// twice.
func TestDrainLockAcrossInstances(t *testing.T) {
	c := testserver.StartPostgres(t)
	dsn := c.NewDB(t)
	a := openInstance(t, dsn, offline.Limits{}, time.Now)
	b := openInstance(t, dsn, offline.Limits{}, time.Now)
	for i := range 3 {
		queuetest.Enqueue(t, a, "s", strconv.Itoa(i), "r")
	}
	ctx := context.Background()
	entered := make(chan struct{})
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the pools close, should the test fail early
	aDone := make(chan int, 1)
	go func() {
		n, err := a.Drain(ctx, "r", func(e offline.Entry) error {
			if e.Seq == 1 {
				close(entered)
				<-release
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		aDone <- n
	}()
	<-entered
	var bDelivered atomic.Int32
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Drain(ctx, "r", func(offline.Entry) error {
			bDelivered.Add(1)
			return nil
		})
		bDone <- err
	}()
	pool := openPool(t, dsn)
	defer pool.Close()
	testserver.WaitFor(t, 10*time.Second, "the second drain to wait for the advisory lock", func() bool {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1::oid`,
			uint32(drainLockClass)).Scan(&waiting)
		return err == nil && waiting == 1
	})
	if n := bDelivered.Load(); n != 0 {
		t.Fatalf("the second drain delivered %d while the first was delivering", n)
	}
	unblock()
	if n := <-aDone; n != 3 {
		t.Fatalf("the first drain delivered %d, want 3", n)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if n := bDelivered.Load(); n != 0 {
		t.Fatalf("the second drain delivered %d again", n)
	}
}

// A Drain whose context ends while it waits for another process's drain
// returns the context's error, and leaves no lock behind.
func TestDrainLockWaitEndsWithContext(t *testing.T) {
	c := testserver.StartPostgres(t)
	dsn := c.NewDB(t)
	a := openInstance(t, dsn, offline.Limits{}, time.Now)
	b := openInstance(t, dsn, offline.Limits{}, time.Now)
	queuetest.Enqueue(t, a, "s", "x", "r")
	entered := make(chan struct{})
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		_, _ = a.Drain(context.Background(), "r", func(offline.Entry) error {
			close(entered)
			<-release
			return errors.New("offline again")
		})
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Drain(ctx, "r", func(offline.Entry) error { return nil })
		bDone <- err
	}()
	pool := openPool(t, dsn)
	defer pool.Close()
	testserver.WaitFor(t, 10*time.Second, "the second drain to wait for the advisory lock", func() bool {
		var waiting int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		return err == nil && waiting == 1
	})
	cancel()
	if err := <-bDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiting drain returned %v, want context.Canceled", err)
	}
	unblock()
	<-aDone
	if got := queuetest.Stanzas(queuetest.DrainAll(t, b, "r")); len(got) != 1 {
		t.Fatalf("after the cancelled wait, drained %v", got)
	}
}

// crashDSNEnv, when set to a DSN, makes TestCrashKeepsAcknowledged the
// child that enqueues into that database until it is killed.
const crashDSNEnv = "MEDIASLOT_PGQUEUE_CRASH_DSN"

// TestCrashKeepsAcknowledged kills a process that is enqueueing into
// PostgreSQL (SIGKILL: its connections drop mid-transaction) and checks
// the promise of the bbolt queue holds: every stanza acknowledged before
// the kill is there, for each of its recipients, in order, with counters
// that match the entries.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if dsn := os.Getenv(crashDSNEnv); dsn != "" {
		q, _ := openQueue(t, dsn, offline.NoLimits, time.Now)
		queuetest.CrashChild(q)
	}
	c := testserver.StartPostgres(t)
	dsn := c.NewDB(t)
	acked := queuetest.Crash(t, "TestCrashKeepsAcknowledged", crashDSNEnv+"="+dsn)
	q := openInstance(t, dsn, offline.Limits{}, time.Now)
	q.Check(t)
	queuetest.CheckCrash(t, q, acked)
}

// More recipients drain at once than the pool has connections: each
// Drain holds one while it delivers, and each needs the writer, which
// needs one too, to delete what it delivered. All finish.
func TestDrainsOutnumberConnections(t *testing.T) {
	c := testserver.StartPostgres(t)
	dsn := c.NewDB(t) + "&pool_max_conns=3"
	q := openInstance(t, dsn, offline.NoLimits, time.Now)
	const recipients, each = 8, offline.DrainBatch + 5
	for r := range recipients {
		queuetest.Fill(t, q, "r"+strconv.Itoa(r), []byte("x"), each)
	}
	var wg sync.WaitGroup
	for r := range recipients {
		wg.Go(func() {
			n, err := q.Drain(context.Background(), "r"+strconv.Itoa(r), func(offline.Entry) error { return nil })
			if err != nil || n != each {
				t.Errorf("Drain(r%d) = %d, %v; want %d", r, n, err, each)
			}
		})
	}
	wg.Wait()
	q.Check(t)
}
