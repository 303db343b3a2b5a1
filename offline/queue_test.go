package offline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestDrainDeliversInOrderPerRecipient(t *testing.T) {
	q := newQueue(t, Limits{SenderShare: 1})
	// More than two drain batches, interleaved with another recipient so
	// the range scan must stop at the boundary between them.
	var want, wantOther []string
	for i := range 2*drainBatch + 10 {
		s := fmt.Sprintf("m%d", i)
		enqueue(t, q, "s@example.org", s, "bob@example.org")
		want = append(want, s)
		if i%7 == 0 {
			enqueue(t, q, "s@example.org", "o"+s, "bo@example.org", "bob@example.org.x")
			wantOther = append(wantOther, "o"+s)
		}
	}
	if !q.Pending("bob@example.org") || q.Pending("carol@example.org") {
		t.Fatal("Pending is wrong before Drain")
	}
	got := drainAll(t, q, "bob@example.org")
	if !slices.Equal(stanzas(got), want) {
		t.Fatalf("drained %v\nwant %v", stanzas(got), want)
	}
	for i, e := range got {
		if e.Recipient != "bob@example.org" || e.Sender != "s@example.org" {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if i > 0 && (e.Seq <= got[i-1].Seq || e.Accepted.Before(got[i-1].Accepted)) {
			t.Fatalf("entry %d: seq %d at %v after seq %d at %v", i, e.Seq, e.Accepted, got[i-1].Seq, got[i-1].Accepted)
		}
	}
	if q.Pending("bob@example.org") {
		t.Fatal("Pending after Drain")
	}
	if got := drainAll(t, q, "bob@example.org"); len(got) != 0 {
		t.Fatalf("second Drain delivered %d", len(got))
	}
	for _, r := range []string{"bo@example.org", "bob@example.org.x"} {
		if got := stanzas(drainAll(t, q, r)); !slices.Equal(got, wantOther) {
			t.Fatalf("%s: drained %v, want %v", r, got, wantOther)
		}
	}
	checkConsistent(t, q.db)
}

func TestEnqueueIsAllOrNothingAcrossRecipients(t *testing.T) {
	q := newQueue(t, Limits{MaxMessages: 2, SenderShare: 1})
	enqueue(t, q, "s", "1", "full")
	enqueue(t, q, "s", "2", "full")
	before, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	err = q.Enqueue(context.Background(), "s", []string{"a", "full", "z"}, []byte("3"))
	var le *LimitError
	if !errors.As(err, &le) || le.Scope != RecipientScope || le.Recipient != "full" || le.Kind != MessageLimit || le.Max != 2 {
		t.Fatalf("Enqueue = %v; want a message LimitError for full", err)
	}
	if q.Pending("a") || q.Pending("z") {
		t.Fatal("stored for the other recipients")
	}
	if after, _ := q.Stats(); after != before {
		t.Fatalf("Stats changed from %+v to %+v", before, after)
	}
	checkConsistent(t, q.db)
}

func TestLimits(t *testing.T) {
	q := newQueue(t, Limits{MaxMessages: 3, MaxBytes: 100, SenderShare: 1})
	ctx := context.Background()
	limitOf := func(err error) (string, LimitKind) {
		var le *LimitError
		if !errors.As(err, &le) {
			t.Fatalf("error %v is not a *LimitError", err)
		}
		return le.Recipient, le.Kind
	}

	enqueue(t, q, "s", strings.Repeat("x", 60), "bytes")
	err := q.Enqueue(ctx, "s", []string{"bytes"}, make([]byte, 41))
	if r, k := limitOf(err); r != "bytes" || k != ByteLimit || !strings.Contains(err.Error(), "100 bytes") {
		t.Fatalf("60+41 bytes: %v", err)
	}
	enqueue(t, q, "s", strings.Repeat("x", 40), "bytes") // exactly at the cap
	if r, k := limitOf(q.Enqueue(ctx, "s", []string{"empty"}, make([]byte, 101))); r != "empty" || k != ByteLimit {
		t.Fatal("a stanza over MaxBytes was not refused")
	}

	for i := range 3 {
		enqueue(t, q, "s", strconv.Itoa(i), "count")
	}
	if r, k := limitOf(q.Enqueue(ctx, "s", []string{"count"}, []byte("3"))); r != "count" || k != MessageLimit {
		t.Fatal("fourth message was not refused")
	}
	drainAll(t, q, "count")
	enqueue(t, q, "s", "again", "count") // room again once drained
	checkConsistent(t, q.db)
}

func TestEnqueueStoresOneCopyPerDistinctRecipient(t *testing.T) {
	q := newQueue(t, Limits{})
	enqueue(t, q, "s", "hi", "a", "b", "a")
	if n := len(drainAll(t, q, "a")); n != 1 {
		t.Fatalf("a got %d copies", n)
	}
	ctx := context.Background()
	for _, rcpts := range [][]string{nil, {""}, {"a", strings.Repeat("x", maxRecipient+1)}} {
		if err := q.Enqueue(ctx, "s", rcpts, []byte("x")); err == nil {
			t.Errorf("Enqueue to %.20q: no error", rcpts)
		}
	}
}

func TestDrainStopsAtFailureAndResumesThere(t *testing.T) {
	q := newQueue(t, Limits{})
	for i := range 10 {
		enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	boom := errors.New("stream closed")
	var got []string
	n, err := q.Drain(context.Background(), "r", func(e Entry) error {
		if string(e.Stanza) == "4" {
			return boom
		}
		got = append(got, string(e.Stanza))
		return nil
	})
	if n != 4 || !errors.Is(err, boom) || !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("Drain = %d, %v, delivered %v", n, err, got)
	}
	if s, _ := q.Stats(); s.Entries != 6 {
		t.Fatalf("%d entries left, want 6", s.Entries)
	}
	want := []string{"4", "5", "6", "7", "8", "9"}
	if got := stanzas(drainAll(t, q, "r")); !slices.Equal(got, want) {
		t.Fatalf("resumed with %v, want %v", got, want)
	}
	checkConsistent(t, q.db)
}

func TestDrainStopsWhenContextEnds(t *testing.T) {
	q := newQueue(t, Limits{})
	for i := range 5 {
		enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := q.Drain(ctx, "r", func(e Entry) error {
		if e.Stanza[0] == '1' {
			cancel()
		}
		return nil
	})
	if n != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain = %d, %v; want 2, canceled", n, err)
	}
	// The two delivered before the end are deleted although ctx had ended.
	if got := stanzas(drainAll(t, q, "r")); !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Fatalf("left %v", got)
	}
}

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
	n, err := failing.Drain(context.Background(), "r", func(Entry) error { return nil })
	if n != 2 || err == nil {
		t.Fatalf("Drain = %d, %v; want 2 and a deletion error", n, err)
	}
	if got := stanzas(drainAll(t, q, "r")); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("second Drain delivered %v, want a and b again", got)
	}
}

func TestConcurrentDrainsDeliverEachEntryOnce(t *testing.T) {
	q := newQueue(t, Limits{})
	for i := range 20 {
		enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, err := q.Drain(context.Background(), "r", func(e Entry) error {
				time.Sleep(time.Millisecond)
				mu.Lock()
				seen[e.Seq]++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Fatalf("delivered %d distinct entries, want 20", len(seen))
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("seq %d delivered %d times", seq, n)
		}
	}
	if len(q.draining) != 0 {
		t.Errorf("%d drain locks left behind", len(q.draining))
	}
}

func TestPurgeRemovesEntriesOlderThanTTL(t *testing.T) {
	q := newQueue(t, Limits{TTL: 90 * time.Minute, SenderShare: 1})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return t0 }
	// More old stanzas than one purge transaction takes, one of them for
	// many recipients.
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := g; i < purgeBatch+5; i += 10 {
				if err := q.Enqueue(context.Background(), "s", []string{"r" + strconv.Itoa(i%7)}, []byte("old")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	group := make([]string, 50)
	for i := range group {
		group[i] = fmt.Sprintf("member%d", i)
	}
	enqueue(t, q, "s", "old", append(group, "keep")...)
	oldEntries := purgeBatch + 5 + len(group) + 1
	q.now = func() time.Time { return t0.Add(time.Hour) }
	enqueue(t, q, "s", "new", "keep")

	if s, _ := q.Stats(); !s.Oldest.Equal(t0) || s.Entries != int64(oldEntries+1) || s.Stanzas != purgeBatch+7 {
		t.Fatalf("Stats before purge: %+v", s)
	}
	ctx := context.Background()
	if n, err := q.Purge(ctx, t0.Add(90*time.Minute)); n != 0 || err != nil {
		t.Fatalf("Purge at exactly the TTL = %d, %v; want nothing purged", n, err)
	}
	n, err := q.Purge(ctx, t0.Add(2*time.Hour))
	if err != nil || n != oldEntries {
		t.Fatalf("Purge = %d, %v; want %d", n, err, oldEntries)
	}
	if q.Pending("r0") || q.Pending(group[0]) {
		t.Fatal("purged recipient still pending")
	}
	s, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s != (Stats{Entries: 1, Stanzas: 1, Bytes: 3, Recipients: 1, Oldest: s.Oldest}) || !s.Oldest.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Stats after purge: %+v", s)
	}
	checkConsistent(t, q.db)
	got := drainAll(t, q, "keep")
	if len(got) != 1 || string(got[0].Stanza) != "new" || !got[0].Accepted.Equal(t0.Add(time.Hour)) {
		t.Fatalf("kept %+v", got)
	}
}

// An entry purged while a Drain delivers it is not subtracted twice.
func TestPurgeDuringDrain(t *testing.T) {
	q := newQueue(t, Limits{TTL: time.Hour})
	enqueue(t, q, "s", "a", "r")
	enqueue(t, q, "s", "b", "r", "other")
	_, err := q.Drain(context.Background(), "r", func(Entry) error {
		_, err := q.Purge(context.Background(), time.Now().Add(2*time.Hour))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := q.Stats(); s != (Stats{}) {
		t.Fatalf("Stats %+v, want empty", s)
	}
	checkConsistent(t, q.db)
}

func TestStats(t *testing.T) {
	q := newQueue(t, Limits{})
	if s, err := q.Stats(); err != nil || s != (Stats{}) {
		t.Fatalf("empty queue: %+v, %v", s, err)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return t0 }
	enqueue(t, q, "s", "12345", "a", "b")
	q.now = func() time.Time { return t0.Add(time.Minute) }
	enqueue(t, q, "s", "123", "b", "c")
	s, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries != 4 || s.Stanzas != 2 || s.Bytes != 8 || s.Recipients != 3 || !s.Oldest.Equal(t0) {
		t.Fatalf("Stats = %+v", s)
	}
	drainAll(t, q, "b")
	if s, _ := q.Stats(); s.Entries != 2 || s.Stanzas != 2 || s.Bytes != 8 || s.Recipients != 2 {
		t.Fatalf("after draining b: %+v", s)
	}
	drainAll(t, q, "a")
	if s, _ := q.Stats(); s.Entries != 1 || s.Stanzas != 1 || s.Bytes != 3 || !s.Oldest.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after draining a: %+v", s)
	}
	checkConsistent(t, q.db)
}

// Many concurrent senders share group commits; every stanza must be
// stored once per recipient, and each recipient's Seq order must agree
// with each sender's own order.
func TestConcurrentEnqueue(t *testing.T) {
	const senders, each = 32, 40
	q := newQueue(t, noLimits)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				rcpts := []string{"group", fmt.Sprintf("own%d", g)}
				if g%2 == 0 {
					rcpts = append(rcpts, "evens")
				}
				err := q.Enqueue(context.Background(), fmt.Sprint(g), rcpts, fmt.Appendf(nil, "%d:%d", g, i))
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkConsistent(t, q.db)
	want := map[string]int{"group": senders, "evens": senders / 2} // recipient: senders
	for g := range senders {
		want[fmt.Sprintf("own%d", g)] = 1
	}
	for r, senders := range want {
		runs := senderRuns(t, drainAll(t, q, r))
		if len(runs) != senders {
			t.Errorf("%s: stanzas from %d senders, want %d", r, len(runs), senders)
		}
		for g, n := range runs {
			if n != each {
				t.Errorf("%s: %d stanzas from %s, want %d", r, n, g, each)
			}
		}
	}
	if s, _ := q.Stats(); s != (Stats{}) {
		t.Fatalf("Stats after draining all: %+v", s)
	}
}

// senderRuns checks that entries, whose stanzas start with a line "g:i",
// come in Seq order and that each sender g's i run 0, 1, 2… with nothing
// lost or repeated. It returns how many entries each sender has.
func senderRuns(t *testing.T, entries []Entry) map[string]int {
	t.Helper()
	next := map[string]int{}
	for k, e := range entries {
		if k > 0 && e.Seq <= entries[k-1].Seq {
			t.Fatalf("%s: seq %d after %d", e.Recipient, e.Seq, entries[k-1].Seq)
		}
		line, _, _ := strings.Cut(string(e.Stanza), "\n")
		g, i, _ := strings.Cut(line, ":")
		if i != strconv.Itoa(next[g]) {
			t.Fatalf("%s: %s:%s where %s:%d was due", e.Recipient, g, i, g, next[g])
		}
		next[g]++
	}
	return next
}
