package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func put(k string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte(k), []byte("v"))
	}
}

func TestConcurrentUpdatesAllCommitAndFailuresAreIsolated(t *testing.T) {
	db := open(t)
	w := New(db)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := put(fmt.Sprint(i))
			switch i % 50 {
			case 7:
				fn = func(tx *bolt.Tx) error {
					_ = put(fmt.Sprint(i))(tx) // must be rolled back
					return boom
				}
			case 9:
				fn = func(*bolt.Tx) error { panic("bad") }
			}
			errs[i] = w.Update(context.Background(), fn)
		}()
	}
	wg.Wait()
	w.Close()
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i, e := range errs {
			v := b.Get([]byte(fmt.Sprint(i)))
			switch i % 50 {
			case 7:
				if !errors.Is(e, boom) || v != nil {
					t.Errorf("%d: err %v, value %q; want boom and no value", i, e, v)
				}
			case 9:
				if e == nil || v != nil {
					t.Errorf("%d: panic not turned into error", i)
				}
			default:
				if e != nil || v == nil {
					t.Errorf("%d: err %v, value %q", i, e, v)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(context.Background(), put("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
}

func BenchmarkUpdateParallel(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := New(db)
	defer w.Close()
	b.SetParallelism(8)
	var n sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			k := fmt.Sprint(i)
			n.Unlock()
			if err := w.Update(context.Background(), put(k)); err != nil {
				b.Error(err)
			}
		}
	})
}

func TestSubmitReturnsBeforeCommitAndFlushWaitsForIt(t *testing.T) {
	db := open(t)
	w := New(db)
	defer w.Close()
	if err := w.Flush(context.Background()); err != nil {
		t.Fatalf("Flush with nothing pending: %v", err)
	}
	release := make(chan struct{})
	outcome := make(chan error, 1)
	err := w.Submit(context.Background(), func(tx *bolt.Tx) error {
		<-release // holds the transaction open until the test lets go
		return put("k")(tx)
	}, func(err error) { outcome <- err })
	if err != nil {
		t.Fatal(err)
	}
	// The write is pending, so a Flush whose context has ended must say so
	// rather than report it done.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush while a write is pending = %v, want context.Canceled", err)
	}
	close(release)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-outcome:
		if err != nil {
			t.Fatalf("done called with %v", err)
		}
	default:
		t.Fatal("Flush returned before the submitted write was answered")
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("b")).Get([]byte("k")) == nil {
			t.Error("submitted write not visible after Flush")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSubmitReportsFailures(t *testing.T) {
	db := open(t)
	w := New(db)
	boom := errors.New("boom")
	got := make([]error, 2)
	for i, fn := range []func(*bolt.Tx) error{put("ok"), func(*bolt.Tx) error { return boom }} {
		if err := w.Submit(context.Background(), fn, func(err error) { got[i] = err }); err != nil {
			t.Fatal(err)
		}
	}
	w.Close() // commits what is queued; done runs before Close returns
	if got[0] != nil || !errors.Is(got[1], boom) {
		t.Fatalf("outcomes %v, want [nil boom]", got)
	}
	if err := w.Submit(context.Background(), put("late"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close = %v, want ErrClosed", err)
	}
}

// Calls started one after the other while a commit is under way share the
// next commit, and run in the order they were started.
func TestStartedCallsShareACommitInOrder(t *testing.T) {
	w := New(open(t))
	t.Cleanup(w.Close)
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	first, err := w.Start(ctx, func(tx *bolt.Tx) error {
		close(entered)
		<-release
		return put("first")(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	var order []int
	txs := map[*bolt.Tx]bool{}
	var waits []func() error
	for i := range 5 {
		wait, err := w.Start(ctx, func(tx *bolt.Tx) error {
			order = append(order, i) // the Writer's goroutine runs them one at a time
			txs[tx] = true
			return put(fmt.Sprint(i))(tx)
		})
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, wait)
	}
	close(release)
	if err := first(); err != nil {
		t.Fatal(err)
	}
	for i, wait := range waits {
		if err := wait(); err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if len(txs) != 1 {
		t.Errorf("5 started calls committed in %d transactions, want 1", len(txs))
	}
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(order, want) {
		t.Errorf("ran %v, want %v", order, want)
	}
}
