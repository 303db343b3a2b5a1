package offline

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A file written before senders and seen recipients were counted opens
// with its recipients seen, and its entries drain and purge without
// tripping the new counters.
func TestOpenUpgradesOlderLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	limits := Limits{UnseenTTL: time.Hour}
	q := openQueue(t, path, nil, limits)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return t0 }
	enqueue(t, q, "s/1", "a", "old1", "old2")
	enqueue(t, q, "s/1", "b", "old2")
	// Rewrite it as the older code left it.
	err := q.db.Update(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		type kv struct{ k, v []byte }
		var old []kv
		if err := b.byTime.ForEach(func(k, v []byte) error {
			old = append(old, kv{slices.Clone(k), slices.Clone(v[:16])})
			return nil
		}); err != nil {
			return err
		}
		for _, x := range old {
			if err := b.byTime.Put(x.k, x.v); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bucketSenders, bucketShares, bucketSeen, bucketUnseen, bucketUnseenBy} {
			if err := b.root.DeleteBucket(name); err != nil {
				return err
			}
		}
		tot := b.totals()
		return b.root.Put(keyTotals, uint64s(tot.entries, tot.stanzas, tot.bytes, tot.recipients))
	})
	if err != nil {
		t.Fatal(err)
	}
	q.w.Close()
	if err := q.db.Close(); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, path, nil, limits)
	q.now = func() time.Time { return t0 }
	enqueue(t, q, "s/2", "c", "old2", "new")
	if n, err := q.Purge(context.Background(), t0.Add(2*time.Hour)); n != 1 || err != nil {
		t.Fatalf("Purge past the unseen TTL = %d, %v; want only new's entry", n, err)
	}
	if got := stanzas(drainAll(t, q, "old2")); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("old2 got %q", got)
	}
	drainAll(t, q, "old1")
	checkConsistent(t, q.db)
	if s, _ := q.Stats(); s != (Stats{}) {
		t.Fatalf("Stats %+v after draining all", s)
	}
}
