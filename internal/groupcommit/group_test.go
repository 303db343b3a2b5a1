package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/testserver"
)

// Updates that queue while a commit is under way share the next one: one
// transaction for all of them, not one each.
func TestConcurrentUpdatesShareOneCommit(t *testing.T) {
	w := New(open(t))
	t.Cleanup(w.Close)
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- w.Update(ctx, func(tx *bolt.Tx) error {
			close(entered)
			<-release
			return put("first")(tx)
		})
	}()
	<-entered // the loop is committing the first: the others queue meanwhile
	const n = 50
	var mu sync.Mutex
	txs := map[*bolt.Tx]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := w.Update(ctx, func(tx *bolt.Tx) error {
				mu.Lock()
				txs[tx]++
				mu.Unlock()
				return put(fmt.Sprint(i))(tx)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	testserver.WaitFor(t, 10*time.Second, "every update queued", func() bool { return len(w.calls) == n })
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if len(txs) != 1 {
		t.Fatalf("%d concurrent updates committed in %d transactions, want 1", n, len(txs))
	}
}

// An Update alone commits at once: only Submit's writes, which nobody waits
// for, linger for company. Here the linger is an hour: an Update that
// waited for it would never return; a lingering Submit ends with the next
// Update, in its commit.
func TestLoneUpdateDoesNotLinger(t *testing.T) {
	old := linger
	linger = time.Hour
	t.Cleanup(func() { linger = old })
	w := New(open(t))
	t.Cleanup(w.Close)
	ctx := context.Background()
	deadline := func(what string, f func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waited for the linger", what)
		}
	}
	deadline("a lone Update", func() error { return w.Update(ctx, put("alone")) })
	submitted := make(chan error, 1)
	if err := w.Submit(ctx, put("submitted"), func(err error) { submitted <- err }); err != nil {
		t.Fatal(err)
	}
	deadline("an Update after a Submit", func() error { return w.Update(ctx, put("after")) })
	select {
	case err := <-submitted:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the lingering Submit was not committed with the Update that followed it")
	}
}
