package offline

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// refusal returns the *LimitError Enqueue returned, failing the test if it
// returned something else.
func refusal(t *testing.T, q testQueue, sender string, stanza string, recipients ...string) *LimitError {
	t.Helper()
	err := q.Enqueue(context.Background(), sender, recipients, []byte(stanza))
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Enqueue(%s -> %v) = %v; want a *LimitError", sender, recipients, err)
	}
	return le
}

// A sender's caps hold across its resources and recipients; its bytes are
// those of its stanzas, each counted once and freed with the last holder.
func TestSenderCaps(t *testing.T) {
	q := newQueue(t, Limits{MaxSenderMessages: 3, MaxSenderBytes: 100})
	enqueue(t, q, "alice@example.org/phone", strings.Repeat("x", 60), "a", "b")
	enqueue(t, q, "alice@example.org/laptop", "y", "c")
	le := refusal(t, q, "alice@example.org/tablet", "z", "d")
	if le.Scope != SenderScope || le.Kind != MessageLimit || le.Max != 3 || le.Sender != "alice@example.org" {
		t.Fatalf("fourth message: %+v", le)
	}
	if !strings.Contains(le.Error(), "alice@example.org has as much queued as one sender may (at most 3 messages)") {
		t.Errorf("error text: %v", le)
	}
	enqueue(t, q, "bob@example.org/phone", "from bob", "d") // another sender is not held up
	if q.Pending("d") != true {
		t.Fatal("bob's message not queued")
	}
	drainAll(t, q, "c")
	if le := refusal(t, q, "alice@example.org", strings.Repeat("x", 41), "d"); le.Scope != SenderScope || le.Kind != ByteLimit || le.Max != 100 {
		t.Fatalf("60+41 bytes: %+v", le)
	}
	enqueue(t, q, "alice@example.org", strings.Repeat("x", 40), "d") // exactly 100 bytes
	drainAll(t, q, "a")                                              // b still holds the 60 bytes
	if le := refusal(t, q, "alice@example.org", "z", "e"); le.Kind != ByteLimit {
		t.Fatalf("after draining a: %+v", le)
	}
	drainAll(t, q, "b")
	enqueue(t, q, "alice@example.org", strings.Repeat("x", 60), "e")
	checkConsistent(t, q.db)
}

// The whole queue's caps count entries (one per recipient) and stored
// bytes (each stanza once), whoever sends.
func TestQueueCaps(t *testing.T) {
	q := newQueue(t, Limits{MaxTotalMessages: 3, MaxTotalBytes: 100})
	enqueue(t, q, "s1", strings.Repeat("x", 60), "a", "b")
	le := refusal(t, q, "s2", "y", "c", "d")
	if le.Scope != QueueScope || le.Kind != MessageLimit || le.Max != 3 {
		t.Fatalf("2+2 messages: %+v", le)
	}
	if !strings.Contains(le.Error(), "the queue is full (at most 3 messages in all)") {
		t.Errorf("error text: %v", le)
	}
	if le := refusal(t, q, "s3", strings.Repeat("x", 41), "c"); le.Scope != QueueScope || le.Kind != ByteLimit || le.Max != 100 {
		t.Fatalf("60+41 bytes: %+v", le)
	}
	enqueue(t, q, "s3", strings.Repeat("x", 40), "c")
	drainAll(t, q, "a")
	drainAll(t, q, "b")
	enqueue(t, q, "s2", "y", "c", "d")
	checkConsistent(t, q.db)
}

// One sender may fill only its share of a recipient's queue, so others
// still get through to that recipient.
func TestSenderShareOfARecipient(t *testing.T) {
	q := newQueue(t, Limits{MaxMessages: 4, MaxBytes: 100, SenderShare: 0.5})
	enqueue(t, q, "mallory@example.org/1", "1", "bob")
	enqueue(t, q, "mallory@example.org/2", "2", "bob")
	le := refusal(t, q, "mallory@example.org/3", "3", "bob")
	if le.Scope != ShareScope || le.Kind != MessageLimit || le.Max != 2 || le.Recipient != "bob" || le.Sender != "mallory@example.org" {
		t.Fatalf("mallory's third message: %+v", le)
	}
	enqueue(t, q, "mallory@example.org", "to carol", "carol") // other recipients are other shares
	if le := refusal(t, q, "alice@example.org", strings.Repeat("x", 51), "bob"); le.Scope != ShareScope || le.Kind != ByteLimit || le.Max != 50 {
		t.Fatalf("51 bytes from alice: %+v", le)
	}
	enqueue(t, q, "alice@example.org", strings.Repeat("x", 50), "bob")
	enqueue(t, q, "dave@example.org", "4", "bob")
	if le := refusal(t, q, "erin@example.org", "5", "bob"); le.Scope != RecipientScope {
		t.Fatalf("fifth message for bob: %+v", le)
	}
	got := stanzas(drainAll(t, q, "bob"))
	if want := []string{"1", "2", strings.Repeat("x", 50), "4"}; !slices.Equal(got, want) {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	enqueue(t, q, "mallory@example.org", "3", "bob") // delivered frees the share
	checkConsistent(t, q.db)
}

// Recipients never seen have their own small caps, together, and a short
// TTL; MarkSeen lifts both, and the mark survives a restart.
func TestUnseenRecipients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	limits := Limits{MaxUnseenMessages: 3, MaxUnseenBytes: 100, UnseenTTL: time.Hour, TTL: 48 * time.Hour, SenderShare: 1}
	q := openQueue(t, path, nil, limits)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return t0 }
	ctx := context.Background()
	markSeen := func(q testQueue, r string) {
		t.Helper()
		if err := q.MarkSeen(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := q.w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	markSeen(q, "bob")
	// From several senders, each within its share of the unseen caps.
	enqueue(t, q, "s1", "1", "bob", "ghost1", "ghost2")
	enqueue(t, q, "s2", "2", "ghost3")
	le := refusal(t, q, "s3", "3", "bob", "ghost4")
	if le.Scope != UnseenScope || le.Kind != MessageLimit || le.Max != 3 || le.Recipient != "ghost4" {
		t.Fatalf("a fourth unseen entry: %+v", le)
	}
	if !strings.Contains(le.Error(), "ghost4 has never been online") {
		t.Errorf("error text: %v", le)
	}
	enqueue(t, q, "s", strings.Repeat("x", 90), "bob") // seen: not counted
	markSeen(q, "ghost1")                              // takes its entry off the unseen caps
	if le := refusal(t, q, "s4", strings.Repeat("x", 99), "ghost4"); le.Scope != UnseenScope || le.Kind != ByteLimit || le.Max != 100 {
		t.Fatalf("1+1+99 unseen bytes: %+v", le)
	}
	enqueue(t, q, "s3", "3", "ghost4")
	checkConsistent(t, q.db)

	// Restart: the marks are in the file.
	q.w.Close()
	if err := q.db.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, path, nil, limits)
	markSeen(q, "ghost4") // seen now, after its entry was queued
	if n, err := q.Purge(ctx, t0.Add(time.Hour)); n != 0 || err != nil {
		t.Fatalf("Purge at exactly the unseen TTL = %d, %v", n, err)
	}
	n, err := q.Purge(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Purge past the unseen TTL = %d, %v; want ghost2's and ghost3's entries", n, err)
	}
	for r, want := range map[string]bool{"bob": true, "ghost1": true, "ghost2": false, "ghost3": false, "ghost4": true} {
		if q.Pending(r) != want {
			t.Errorf("Pending(%s) = %v after the purge", r, !want)
		}
	}
	checkConsistent(t, q.db)
	if err := q.db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if n := b.unseen.Stats().KeyN; err == nil && n != 0 {
			t.Errorf("%d keys left in the unseen index", n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Purge(ctx, t0.Add(49*time.Hour)); n != 4 || err != nil {
		t.Fatalf("Purge past the TTL = %d, %v; want the rest", n, err)
	}
}

// One sender may fill only its share of the caps of recipients never
// seen, so others can still reach recipients who have yet to come online.
func TestSenderShareOfUnseenRecipients(t *testing.T) {
	q := newQueue(t, Limits{MaxUnseenMessages: 4, MaxUnseenBytes: 100, SenderShare: 0.5})
	enqueue(t, q, "mallory@example.org/1", "1", "ghost1")
	enqueue(t, q, "mallory@example.org/2", "2", "ghost2")
	le := refusal(t, q, "mallory@example.org/3", "3", "ghost3")
	if le.Scope != UnseenShareScope || le.Kind != MessageLimit || le.Max != 2 || le.Sender != "mallory@example.org" || le.Recipient != "ghost3" {
		t.Fatalf("mallory's third unseen entry: %+v", le)
	}
	if !strings.Contains(le.Error(), "mallory@example.org has as much queued for recipients never seen online, such as ghost3, as one sender may (at most 2 messages)") {
		t.Errorf("error text: %v", le)
	}
	if le := refusal(t, q, "alice@example.org", strings.Repeat("x", 51), "ghost3"); le.Scope != UnseenShareScope || le.Kind != ByteLimit || le.Max != 50 {
		t.Fatalf("51 unseen bytes from alice: %+v", le)
	}
	enqueue(t, q, "alice@example.org", "a", "ghost3", "ghost4")
	if le := refusal(t, q, "erin@example.org", "e", "ghost5"); le.Scope != UnseenScope {
		t.Fatalf("a fifth unseen entry: %+v", le)
	}
	ctx := context.Background()
	if err := q.MarkSeen(ctx, "ghost1"); err != nil {
		t.Fatal(err)
	}
	if err := q.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, "mallory@example.org", "3", "ghost5") // ghost1's entry no longer counts
	checkConsistent(t, q.db)
	drainAll(t, q, "ghost2")
	drainAll(t, q, "ghost1")
	checkConsistent(t, q.db)
}

// Drain does not deliver what is past the TTL, even when Purge has not
// run: it drops it.
func TestDrainDropsExpiredEntries(t *testing.T) {
	q := newQueue(t, Limits{TTL: time.Hour})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return t0 }
	enqueue(t, q, "s", "old", "r", "other")
	q.now = func() time.Time { return t0.Add(30 * time.Minute) }
	enqueue(t, q, "s", "new", "r")
	q.now = func() time.Time { return t0.Add(time.Hour) }
	if got := stanzas(drainAll(t, q, "other")); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("at exactly the TTL, drained %q", got)
	}
	q.now = func() time.Time { return t0.Add(time.Hour + time.Nanosecond) }
	if got := stanzas(drainAll(t, q, "r")); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("past the TTL of the first, drained %q; want only the new one", got)
	}
	if s, _ := q.Stats(); s != (Stats{}) {
		t.Fatalf("Stats %+v; the expired entry should be gone", s)
	}
	checkConsistent(t, q.db)
}

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
