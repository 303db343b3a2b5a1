package offline

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The tests of what every backend promises are in offline/queuetest, run
// on bbolt by conformance_test.go; these are bbolt's own.

// A delivered entry whose deletion never commits is delivered again by
// the next Drain. The deletion fails here because the Queue that drains
// first writes through a Writer on another, empty file.
func TestDrainIsAtLeastOnce(t *testing.T) {
	q := newQueue(t, Limits{})
	enqueue(t, q, "s", "a", "r")
	enqueue(t, q, "s", "b", "r")
	empty, err := bolt.Open(filepath.Join(t.TempDir(), "empty.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { empty.Close() })
	failing, err := Open(q.db, newWriter(t, empty), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := failing.Drain(context.Background(), "r", func(Entry) error { return nil }, nil)
	if n != 2 || err == nil {
		t.Fatalf("Drain = %d, %v; want 2 and a deletion error", n, err)
	}
	if got := stanzas(drainAll(t, q, "r")); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("second Drain delivered %v, want a and b again", got)
	}
}
