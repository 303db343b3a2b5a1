package queuetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediaslot/offline"
)

var ctx = context.Background()

func testOrder(t *testing.T, open Open) {
	q := open(t, offline.Limits{SenderShare: 1}, time.Now)
	// More than two drain batches, interleaved with another recipient so
	// the range scan must stop at the boundary between them.
	var want, wantOther []string
	for i := range 2*offline.DrainBatch + 10 {
		s := fmt.Sprintf("m%d", i)
		Enqueue(t, q, "s@example.org", s, "bob@example.org")
		want = append(want, s)
		if i%7 == 0 {
			Enqueue(t, q, "s@example.org", "o"+s, "bo@example.org", "bob@example.org.x")
			wantOther = append(wantOther, "o"+s)
		}
	}
	if !q.Pending("bob@example.org") || q.Pending("carol@example.org") {
		t.Fatal("Pending is wrong before Drain")
	}
	got := DrainAll(t, q, "bob@example.org")
	if !slices.Equal(Stanzas(got), want) {
		t.Fatalf("drained %v\nwant %v", Stanzas(got), want)
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
	if got := DrainAll(t, q, "bob@example.org"); len(got) != 0 {
		t.Fatalf("second Drain delivered %d", len(got))
	}
	for _, r := range []string{"bo@example.org", "bob@example.org.x"} {
		if got := Stanzas(DrainAll(t, q, r)); !slices.Equal(got, wantOther) {
			t.Fatalf("%s: drained %v, want %v", r, got, wantOther)
		}
	}
	q.check(t)
}

func testAllOrNothing(t *testing.T, open Open) {
	q := open(t, offline.Limits{MaxMessages: 2, SenderShare: 1}, time.Now)
	Enqueue(t, q, "s", "1", "full")
	Enqueue(t, q, "s", "2", "full")
	before := stats(t, q)
	err := q.Enqueue(ctx, "s", []string{"a", "full", "z"}, []byte("3"))
	var le *offline.LimitError
	if !errors.As(err, &le) || le.Scope != offline.RecipientScope || le.Recipient != "full" || le.Kind != offline.MessageLimit || le.Max != 2 {
		t.Fatalf("Enqueue = %v; want a message LimitError for full", err)
	}
	if q.Pending("a") || q.Pending("z") {
		t.Fatal("stored for the other recipients")
	}
	if after := stats(t, q); after != before {
		t.Fatalf("Stats changed from %+v to %+v", before, after)
	}
	q.check(t)
}

func testRecipientCaps(t *testing.T, open Open) {
	q := open(t, offline.Limits{MaxMessages: 3, MaxBytes: 100, SenderShare: 1}, time.Now)
	limitOf := func(err error) (string, offline.LimitKind) {
		t.Helper()
		var le *offline.LimitError
		if !errors.As(err, &le) {
			t.Fatalf("error %v is not a *LimitError", err)
		}
		return le.Recipient, le.Kind
	}
	Enqueue(t, q, "s", strings.Repeat("x", 60), "bytes")
	err := q.Enqueue(ctx, "s", []string{"bytes"}, make([]byte, 41))
	if r, k := limitOf(err); r != "bytes" || k != offline.ByteLimit || !strings.Contains(err.Error(), "100 bytes") {
		t.Fatalf("60+41 bytes: %v", err)
	}
	Enqueue(t, q, "s", strings.Repeat("x", 40), "bytes") // exactly at the cap
	if r, k := limitOf(q.Enqueue(ctx, "s", []string{"empty"}, make([]byte, 101))); r != "empty" || k != offline.ByteLimit {
		t.Fatal("a stanza over MaxBytes was not refused")
	}
	for i := range 3 {
		Enqueue(t, q, "s", strconv.Itoa(i), "count")
	}
	if r, k := limitOf(q.Enqueue(ctx, "s", []string{"count"}, []byte("3"))); r != "count" || k != offline.MessageLimit {
		t.Fatal("fourth message was not refused")
	}
	DrainAll(t, q, "count")
	Enqueue(t, q, "s", "again", "count") // room again once drained
	q.check(t)
}

func testDistinctRecipients(t *testing.T, open Open) {
	q := open(t, offline.Limits{}, time.Now)
	Enqueue(t, q, "s", "hi", "a", "b", "a")
	if n := len(DrainAll(t, q, "a")); n != 1 {
		t.Fatalf("a got %d copies", n)
	}
	for _, rcpts := range [][]string{nil, {""}, {"a", strings.Repeat("x", offline.MaxRecipient+1)}} {
		if err := q.Enqueue(ctx, "s", rcpts, []byte("x")); err == nil {
			t.Errorf("Enqueue to %.20q: no error", rcpts)
		}
	}
	if err := q.Enqueue(ctx, strings.Repeat("x", offline.MaxRecipient+1), []string{"a"}, []byte("x")); err == nil {
		t.Error("Enqueue from an over-long account: no error")
	}
	if s := stats(t, q); s.Entries != 1 || s.Stanzas != 1 {
		t.Fatalf("Stats %+v; want only b's entry", s)
	}
	q.check(t)
}

func testDrainStopsAtFailure(t *testing.T, open Open) {
	q := open(t, offline.Limits{}, time.Now)
	for i := range 10 {
		Enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	boom := errors.New("stream closed")
	var got []string
	n, err := q.Drain(ctx, "r", func(e offline.Entry) error {
		if string(e.Stanza) == "4" {
			return boom
		}
		got = append(got, string(e.Stanza))
		return nil
	})
	if n != 4 || !errors.Is(err, boom) || !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("Drain = %d, %v, delivered %v", n, err, got)
	}
	if s := stats(t, q); s.Entries != 6 {
		t.Fatalf("%d entries left, want 6", s.Entries)
	}
	want := []string{"4", "5", "6", "7", "8", "9"}
	if got := Stanzas(DrainAll(t, q, "r")); !slices.Equal(got, want) {
		t.Fatalf("resumed with %v, want %v", got, want)
	}
	q.check(t)
}

func testDrainStopsWhenContextEnds(t *testing.T, open Open) {
	q := open(t, offline.Limits{}, time.Now)
	for i := range 5 {
		Enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	cctx, cancel := context.WithCancel(ctx)
	n, err := q.Drain(cctx, "r", func(e offline.Entry) error {
		if e.Stanza[0] == '1' {
			cancel()
		}
		return nil
	})
	if n != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain = %d, %v; want 2, canceled", n, err)
	}
	// The two delivered before the end are deleted although ctx had ended.
	if got := Stanzas(DrainAll(t, q, "r")); !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Fatalf("left %v", got)
	}
	q.check(t)
}

// While deliver runs for an entry, that entry and every later one are
// still stored: deletion follows delivery, never precedes it.
func testDeletedOnlyAfterDeliver(t *testing.T, open Open) {
	q := open(t, offline.Limits{SenderShare: 1}, time.Now)
	const n = offline.DrainBatch + 10
	for i := range n {
		Enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	i := 0
	_, err := q.Drain(ctx, "r", func(e offline.Entry) error {
		if s := stats(t, q); s.Entries < int64(n-i) {
			t.Fatalf("delivering entry %d, %d entries stored; want at least %d", i, s.Entries, n-i)
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("Drain delivered %d, %v", i, err)
	}
	if s := stats(t, q); s.Entries != 0 {
		t.Fatalf("%d entries left after the Drain", s.Entries)
	}
}

// errCrash stands for a process that dies in the middle of a Drain: the
// panic unwinds Drain before it can delete what was delivered.
type errCrash struct{}

// A Drain that never returns (the process died after delivering) leaves
// what it delivered queued: the next Drain delivers it again.
func testAtLeastOnce(t *testing.T, open Open) {
	q := open(t, offline.Limits{}, time.Now)
	for _, s := range []string{"a", "b", "c"} {
		Enqueue(t, q, "s", s, "r")
	}
	var delivered []string
	func() {
		defer func() {
			if p := recover(); p != (errCrash{}) {
				t.Fatalf("recovered %v", p)
			}
		}()
		_, _ = q.Drain(ctx, "r", func(e offline.Entry) error {
			delivered = append(delivered, string(e.Stanza))
			if len(delivered) == 2 {
				panic(errCrash{})
			}
			return nil
		})
	}()
	if got := Stanzas(DrainAll(t, q, "r")); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after the crash, drained %v; want a and b again, then c", got)
	}
	q.check(t)
}

// Concurrent Drains of one recipient, in one process or two, run one at
// a time: no entry is delivered twice, and deliver never runs twice at
// once for the recipient.
func testOneDrainAtATime(t *testing.T, open Open) {
	q := open(t, offline.Limits{}, time.Now)
	queues := []offline.Queue{q, q}
	if q.Another != nil {
		queues = append(queues, q.Another(t), q.Another(t))
	} else {
		queues = append(queues, q, q)
	}
	const n = 40
	for i := range n {
		Enqueue(t, q, "s", strconv.Itoa(i), "r")
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var active atomic.Int32
	var wg sync.WaitGroup
	for _, dq := range queues {
		wg.Go(func() {
			_, err := dq.Drain(ctx, "r", func(e offline.Entry) error {
				if active.Add(1) != 1 {
					t.Error("two Drains of r deliver at once")
				}
				runtime.Gosched() // give another Drain the chance to break in
				mu.Lock()
				seen[e.Seq]++
				mu.Unlock()
				active.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("delivered %d distinct entries, want %d", len(seen), n)
	}
	for seq, k := range seen {
		if k != 1 {
			t.Errorf("seq %d delivered %d times", seq, k)
		}
	}
}

func testPurge(t *testing.T, open Open) {
	const purgeBatch = 1024 // stanzas a purge transaction takes, in both backends
	var clock Clock
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Set(t0)
	q := open(t, offline.Limits{TTL: 90 * time.Minute, SenderShare: 1}, clock.Now)
	// More old stanzas than one purge transaction takes, one of them for
	// many recipients.
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := g; i < purgeBatch+5; i += 10 {
				if err := q.Enqueue(ctx, "s", []string{"r" + strconv.Itoa(i%7)}, []byte("old")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	members := group(50)
	Enqueue(t, q, "s", "old", append(members, "keep")...)
	oldEntries := purgeBatch + 5 + len(members) + 1
	clock.Set(t0.Add(time.Hour))
	Enqueue(t, q, "s", "new", "keep")

	if s := stats(t, q); !s.Oldest.Equal(t0) || s.Entries != int64(oldEntries+1) || s.Stanzas != purgeBatch+7 {
		t.Fatalf("Stats before purge: %+v", s)
	}
	if n, err := q.Purge(ctx, t0.Add(90*time.Minute)); n != 0 || err != nil {
		t.Fatalf("Purge at exactly the TTL = %d, %v; want nothing purged", n, err)
	}
	n, err := q.Purge(ctx, t0.Add(2*time.Hour))
	if err != nil || n != oldEntries {
		t.Fatalf("Purge = %d, %v; want %d", n, err, oldEntries)
	}
	if q.Pending("r0") || q.Pending(members[0]) {
		t.Fatal("purged recipient still pending")
	}
	s := stats(t, q)
	if s != (offline.Stats{Entries: 1, Stanzas: 1, Bytes: 3, Recipients: 1, Oldest: s.Oldest}) || !s.Oldest.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Stats after purge: %+v", s)
	}
	q.check(t)
	got := DrainAll(t, q, "keep")
	if len(got) != 1 || string(got[0].Stanza) != "new" || !got[0].Accepted.Equal(t0.Add(time.Hour)) {
		t.Fatalf("kept %+v", got)
	}
}

// An entry purged while a Drain delivers it is not subtracted twice.
func testPurgeDuringDrain(t *testing.T, open Open) {
	q := open(t, offline.Limits{TTL: time.Hour}, time.Now)
	Enqueue(t, q, "s", "a", "r")
	Enqueue(t, q, "s", "b", "r", "other")
	_, err := q.Drain(ctx, "r", func(offline.Entry) error {
		_, err := q.Purge(ctx, time.Now().Add(2*time.Hour))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := stats(t, q); s != (offline.Stats{}) {
		t.Fatalf("Stats %+v, want empty", s)
	}
	q.check(t)
}

func testStats(t *testing.T, open Open) {
	var clock Clock
	q := open(t, offline.Limits{}, clock.Now)
	if s := stats(t, q); s != (offline.Stats{}) {
		t.Fatalf("empty queue: %+v", s)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock.Set(t0)
	Enqueue(t, q, "s", "12345", "a", "b")
	clock.Set(t0.Add(time.Minute))
	Enqueue(t, q, "s", "123", "b", "c")
	s := stats(t, q)
	if s.Entries != 4 || s.Stanzas != 2 || s.Bytes != 8 || s.Recipients != 3 || !s.Oldest.Equal(t0) {
		t.Fatalf("Stats = %+v", s)
	}
	DrainAll(t, q, "b")
	if s := stats(t, q); s.Entries != 2 || s.Stanzas != 2 || s.Bytes != 8 || s.Recipients != 2 {
		t.Fatalf("after draining b: %+v", s)
	}
	DrainAll(t, q, "a")
	if s := stats(t, q); s.Entries != 1 || s.Stanzas != 1 || s.Bytes != 3 || !s.Oldest.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after draining a: %+v", s)
	}
	q.check(t)
}

// Many concurrent senders share commits; every stanza must be stored once
// per recipient, and each recipient's Seq order must agree with each
// sender's own order.
func testConcurrentEnqueue(t *testing.T, open Open) {
	const senders, each = 32, 40
	q := open(t, offline.NoLimits, time.Now)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				rcpts := []string{"group", fmt.Sprintf("own%d", g)}
				if g%2 == 0 {
					rcpts = append(rcpts, "evens")
				}
				if err := q.Enqueue(ctx, fmt.Sprint(g), rcpts, fmt.Appendf(nil, "%d:%d", g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	q.check(t)
	want := map[string]int{"group": senders, "evens": senders / 2} // recipient: senders
	for g := range senders {
		want[fmt.Sprintf("own%d", g)] = 1
	}
	for r, senders := range want {
		runs := SenderRuns(t, DrainAll(t, q, r))
		if len(runs) != senders {
			t.Errorf("%s: stanzas from %d senders, want %d", r, len(runs), senders)
		}
		for g, n := range runs {
			if n != each {
				t.Errorf("%s: %d stanzas from %s, want %d", r, n, g, each)
			}
		}
	}
	if s := stats(t, q); s != (offline.Stats{}) {
		t.Fatalf("Stats after draining all: %+v", s)
	}
}

// Drains run while concurrent enqueues (from a second process, if the
// backend has one) commit. Whatever order the enqueues commit in, no drain
// may deliver an entry and then, later, one with a lower Seq: a backend
// that hands out Seq before commit (a database sequence) would let a
// drain pass an entry whose transaction commits late, and deliver it
// after its successors, out of order.
func testOrderWhileDraining(t *testing.T, open Open) {
	const senders, each = 16, 60
	q := open(t, offline.NoLimits, time.Now)
	writers := []offline.Queue{q}
	if q.Another != nil {
		writers = append(writers, q.Another(t))
	}
	var delivered []offline.Entry // in delivery order, over all drains
	var enqueuers sync.WaitGroup
	for g := range senders {
		w := writers[g%len(writers)]
		enqueuers.Go(func() {
			for i := range each {
				// Every other stanza has a second recipient, so
				// transactions differ in size and commit out of step.
				rcpts := []string{"r"}
				if i%2 == 0 {
					rcpts = append(rcpts, fmt.Sprintf("other%d", i%5))
				}
				if err := w.Enqueue(ctx, "s"+strconv.Itoa(g), rcpts, fmt.Appendf(nil, "%d:%d", g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { enqueuers.Wait(); close(done) }()
	drain := func() {
		if _, err := q.Drain(ctx, "r", func(e offline.Entry) error {
			delivered = append(delivered, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for drains := 0; ; drains++ {
		select {
		case <-done:
			drain()
			if runs := SenderRuns(t, delivered); len(runs) != senders {
				t.Fatalf("stanzas from %d senders, want %d", len(runs), senders)
			}
			if len(delivered) != senders*each {
				t.Fatalf("delivered %d, want %d", len(delivered), senders*each)
			}
			t.Logf("%d drains while enqueuing", drains)
			q.check(t)
			return
		default:
			drain()
		}
	}
}

// A sender's caps hold across its resources and recipients; its bytes are
// those of its stanzas, each counted once and freed with the last holder.
func testSenderCaps(t *testing.T, open Open) {
	q := open(t, offline.Limits{MaxSenderMessages: 3, MaxSenderBytes: 100}, time.Now)
	Enqueue(t, q, "alice@example.org/phone", strings.Repeat("x", 60), "a", "b")
	Enqueue(t, q, "alice@example.org/laptop", "y", "c")
	le := Refusal(t, q, "alice@example.org/tablet", "z", "d")
	if le.Scope != offline.SenderScope || le.Kind != offline.MessageLimit || le.Max != 3 || le.Sender != "alice@example.org" {
		t.Fatalf("fourth message: %+v", le)
	}
	if !strings.Contains(le.Error(), "alice@example.org has as much queued as one sender may (at most 3 messages)") {
		t.Errorf("error text: %v", le)
	}
	Enqueue(t, q, "bob@example.org/phone", "from bob", "d") // another sender is not held up
	if !q.Pending("d") {
		t.Fatal("bob's message not queued")
	}
	DrainAll(t, q, "c")
	if le := Refusal(t, q, "alice@example.org", strings.Repeat("x", 41), "d"); le.Scope != offline.SenderScope || le.Kind != offline.ByteLimit || le.Max != 100 {
		t.Fatalf("60+41 bytes: %+v", le)
	}
	Enqueue(t, q, "alice@example.org", strings.Repeat("x", 40), "d") // exactly 100 bytes
	DrainAll(t, q, "a")                                              // b still holds the 60 bytes
	if le := Refusal(t, q, "alice@example.org", "z", "e"); le.Kind != offline.ByteLimit {
		t.Fatalf("after draining a: %+v", le)
	}
	DrainAll(t, q, "b")
	Enqueue(t, q, "alice@example.org", strings.Repeat("x", 60), "e")
	q.check(t)
}

// The whole queue's caps count entries (one per recipient) and stored
// bytes (each stanza once), whoever sends.
func testQueueCaps(t *testing.T, open Open) {
	q := open(t, offline.Limits{MaxTotalMessages: 3, MaxTotalBytes: 100}, time.Now)
	Enqueue(t, q, "s1", strings.Repeat("x", 60), "a", "b")
	le := Refusal(t, q, "s2", "y", "c", "d")
	if le.Scope != offline.QueueScope || le.Kind != offline.MessageLimit || le.Max != 3 {
		t.Fatalf("2+2 messages: %+v", le)
	}
	if !strings.Contains(le.Error(), "the queue is full (at most 3 messages in all)") {
		t.Errorf("error text: %v", le)
	}
	if le := Refusal(t, q, "s3", strings.Repeat("x", 41), "c"); le.Scope != offline.QueueScope || le.Kind != offline.ByteLimit || le.Max != 100 {
		t.Fatalf("60+41 bytes: %+v", le)
	}
	Enqueue(t, q, "s3", strings.Repeat("x", 40), "c")
	DrainAll(t, q, "a")
	DrainAll(t, q, "b")
	Enqueue(t, q, "s2", "y", "c", "d")
	q.check(t)
}

// One sender may fill only its share of a recipient's queue, so others
// still get through to that recipient.
func testSenderShare(t *testing.T, open Open) {
	q := open(t, offline.Limits{MaxMessages: 4, MaxBytes: 100, SenderShare: 0.5}, time.Now)
	Enqueue(t, q, "mallory@example.org/1", "1", "bob")
	Enqueue(t, q, "mallory@example.org/2", "2", "bob")
	le := Refusal(t, q, "mallory@example.org/3", "3", "bob")
	if le.Scope != offline.ShareScope || le.Kind != offline.MessageLimit || le.Max != 2 || le.Recipient != "bob" || le.Sender != "mallory@example.org" {
		t.Fatalf("mallory's third message: %+v", le)
	}
	Enqueue(t, q, "mallory@example.org", "to carol", "carol") // other recipients are other shares
	if le := Refusal(t, q, "alice@example.org", strings.Repeat("x", 51), "bob"); le.Scope != offline.ShareScope || le.Kind != offline.ByteLimit || le.Max != 50 {
		t.Fatalf("51 bytes from alice: %+v", le)
	}
	Enqueue(t, q, "alice@example.org", strings.Repeat("x", 50), "bob")
	Enqueue(t, q, "dave@example.org", "4", "bob")
	if le := Refusal(t, q, "erin@example.org", "5", "bob"); le.Scope != offline.RecipientScope {
		t.Fatalf("fifth message for bob: %+v", le)
	}
	got := Stanzas(DrainAll(t, q, "bob"))
	if want := []string{"1", "2", strings.Repeat("x", 50), "4"}; !slices.Equal(got, want) {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	Enqueue(t, q, "mallory@example.org", "3", "bob") // delivered frees the share
	q.check(t)
}

// markSeen marks r seen, failing the test on an error.
func markSeen(t testing.TB, q offline.Queue, r string) {
	t.Helper()
	if err := q.MarkSeen(ctx, r); err != nil {
		t.Fatal(err)
	}
}

// Recipients never seen have their own small caps, together, and a short
// TTL; MarkSeen lifts both, and the mark survives a restart.
func testUnseenRecipients(t *testing.T, open Open) {
	var clock Clock
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock.Set(t0)
	q := open(t, offline.Limits{MaxUnseenMessages: 3, MaxUnseenBytes: 100, UnseenTTL: time.Hour, TTL: 48 * time.Hour, SenderShare: 1}, clock.Now)
	markSeen(t, q, "bob")
	// From several senders, each within its share of the unseen caps.
	Enqueue(t, q, "s1", "1", "bob", "ghost1", "ghost2")
	Enqueue(t, q, "s2", "2", "ghost3")
	le := Refusal(t, q, "s3", "3", "bob", "ghost4")
	if le.Scope != offline.UnseenScope || le.Kind != offline.MessageLimit || le.Max != 3 || le.Recipient != "ghost4" {
		t.Fatalf("a fourth unseen entry: %+v", le)
	}
	if !strings.Contains(le.Error(), "ghost4 has never been online") {
		t.Errorf("error text: %v", le)
	}
	Enqueue(t, q, "s", strings.Repeat("x", 90), "bob") // seen: not counted
	markSeen(t, q, "ghost1")                           // takes its entry off the unseen caps
	if le := Refusal(t, q, "s4", strings.Repeat("x", 99), "ghost4"); le.Scope != offline.UnseenScope || le.Kind != offline.ByteLimit || le.Max != 100 {
		t.Fatalf("1+1+99 unseen bytes: %+v", le)
	}
	Enqueue(t, q, "s3", "3", "ghost4")
	q.check(t)

	q = q.Restart(t)         // the marks are kept
	markSeen(t, q, "ghost4") // seen now, after its entry was queued
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
	q.check(t)
	if n, err := q.Purge(ctx, t0.Add(49*time.Hour)); n != 4 || err != nil {
		t.Fatalf("Purge past the TTL = %d, %v; want the rest", n, err)
	}
	q.check(t)
}

// MarkSeen does not wait for its write, but a Purge that follows it
// counts the recipient as seen: the entries stay until the full TTL.
// Many marks at once, so that some wait for a later commit than the
// first.
func testMarkSeenBeforePurge(t *testing.T, open Open) {
	var clock Clock
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock.Set(t0)
	q := open(t, offline.Limits{UnseenTTL: time.Hour, SenderShare: 1}, clock.Now)
	members := group(500)
	Enqueue(t, q, "s", "x", members...)
	for _, r := range members {
		markSeen(t, q, r)
	}
	if purged, err := q.Purge(ctx, t0.Add(2*time.Hour)); purged != 0 || err != nil {
		t.Fatalf("Purge right after MarkSeen = %d, %v; want nothing purged", purged, err)
	}
	if s := stats(t, q); s.Entries != int64(len(members)) {
		t.Fatalf("Stats %+v; want %d entries", s, len(members))
	}
	q.check(t)
}

// One sender may fill only its share of the caps of recipients never
// seen, so others can still reach recipients who have yet to come online.
func testUnseenShare(t *testing.T, open Open) {
	q := open(t, offline.Limits{MaxUnseenMessages: 4, MaxUnseenBytes: 100, SenderShare: 0.5}, time.Now)
	Enqueue(t, q, "mallory@example.org/1", "1", "ghost1")
	Enqueue(t, q, "mallory@example.org/2", "2", "ghost2")
	le := Refusal(t, q, "mallory@example.org/3", "3", "ghost3")
	if le.Scope != offline.UnseenShareScope || le.Kind != offline.MessageLimit || le.Max != 2 || le.Sender != "mallory@example.org" || le.Recipient != "ghost3" {
		t.Fatalf("mallory's third unseen entry: %+v", le)
	}
	if !strings.Contains(le.Error(), "mallory@example.org has as much queued for recipients never seen online, such as ghost3, as one sender may (at most 2 messages)") {
		t.Errorf("error text: %v", le)
	}
	if le := Refusal(t, q, "alice@example.org", strings.Repeat("x", 51), "ghost3"); le.Scope != offline.UnseenShareScope || le.Kind != offline.ByteLimit || le.Max != 50 {
		t.Fatalf("51 unseen bytes from alice: %+v", le)
	}
	Enqueue(t, q, "alice@example.org", "a", "ghost3", "ghost4")
	if le := Refusal(t, q, "erin@example.org", "e", "ghost5"); le.Scope != offline.UnseenScope {
		t.Fatalf("a fifth unseen entry: %+v", le)
	}
	markSeen(t, q, "ghost1")
	Enqueue(t, q, "mallory@example.org", "3", "ghost5") // ghost1's entry no longer counts
	q.check(t)
	DrainAll(t, q, "ghost2")
	DrainAll(t, q, "ghost1")
	q.check(t)
}

// Drain does not deliver what is past the TTL, even when Purge has not
// run: it drops it.
func testDrainDropsExpired(t *testing.T, open Open) {
	var clock Clock
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock.Set(t0)
	q := open(t, offline.Limits{TTL: time.Hour}, clock.Now)
	Enqueue(t, q, "s", "old", "r", "other")
	clock.Set(t0.Add(30 * time.Minute))
	Enqueue(t, q, "s", "new", "r")
	clock.Set(t0.Add(time.Hour))
	if got := Stanzas(DrainAll(t, q, "other")); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("at exactly the TTL, drained %q", got)
	}
	clock.Set(t0.Add(time.Hour + time.Nanosecond))
	if got := Stanzas(DrainAll(t, q, "r")); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("past the TTL of the first, drained %q; want only the new one", got)
	}
	if s := stats(t, q); s != (offline.Stats{}) {
		t.Fatalf("Stats %+v; the expired entry should be gone", s)
	}
	q.check(t)
}

// Enqueues that race for the last room under a cap (from two processes,
// if the backend has them) are admitted exactly up to the cap, for every
// scope the caps count in.
func testCapsExactUnderRace(t *testing.T, open Open) {
	const room, racers = 5, 40
	for _, c := range []struct {
		name   string
		limits offline.Limits
		scope  offline.LimitScope
		// send returns the sender and recipients of racer i.
		send func(i int) (string, []string)
	}{
		{"recipient", offline.Limits{MaxMessages: room, SenderShare: 1}, offline.RecipientScope,
			func(i int) (string, []string) { return fmt.Sprintf("s%d", i), []string{"r"} }},
		{"share", offline.Limits{MaxMessages: 4 * room, SenderShare: 0.25}, offline.ShareScope,
			func(i int) (string, []string) { return fmt.Sprintf("s/%d", i), []string{"r"} }},
		{"sender", offline.Limits{MaxSenderMessages: room}, offline.SenderScope,
			func(i int) (string, []string) { return fmt.Sprintf("s/%d", i), []string{fmt.Sprintf("r%d", i)} }},
		{"unseen", offline.Limits{MaxUnseenMessages: room, SenderShare: 1}, offline.UnseenScope,
			func(i int) (string, []string) { return fmt.Sprintf("s%d", i), []string{fmt.Sprintf("r%d", i)} }},
		{"unseen share", offline.Limits{MaxUnseenMessages: 4 * room, SenderShare: 0.25}, offline.UnseenShareScope,
			func(i int) (string, []string) { return "s", []string{fmt.Sprintf("r%d", i)} }},
		{"queue", offline.Limits{MaxTotalMessages: room}, offline.QueueScope,
			func(i int) (string, []string) { return fmt.Sprintf("s%d", i), []string{fmt.Sprintf("r%d", i)} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := open(t, c.limits, time.Now)
			queues := []offline.Queue{q}
			if q.Another != nil {
				queues = append(queues, q.Another(t))
			}
			start := make(chan struct{})
			var accepted, refused atomic.Int32
			var wg sync.WaitGroup
			for i := range racers {
				sender, rcpts := c.send(i)
				wq := queues[i%len(queues)]
				wg.Go(func() {
					<-start
					err := wq.Enqueue(ctx, sender, rcpts, []byte("x"))
					var le *offline.LimitError
					switch {
					case err == nil:
						accepted.Add(1)
					case errors.As(err, &le) && le.Scope == c.scope:
						refused.Add(1)
					default:
						t.Errorf("Enqueue: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			if accepted.Load() != room || refused.Load() != racers-room {
				t.Fatalf("%d accepted, %d refused; want %d and %d", accepted.Load(), refused.Load(), room, racers-room)
			}
			if s := stats(t, q); s.Entries != room {
				t.Fatalf("Stats %+v; want %d entries", s, room)
			}
			q.check(t)
		})
	}
}

// What was accepted before a restart is there after it, in order, and
// delivered once.
func testRestart(t *testing.T, open Open) {
	q := open(t, offline.Limits{}, time.Now)
	for i := range 10 {
		Enqueue(t, q, "s", fmt.Sprintf("0:%d", i), "r", "o")
	}
	DrainAll(t, q, "o")
	q = q.Restart(t)
	if !q.Pending("r") || q.Pending("o") {
		t.Fatal("Pending is wrong after the restart")
	}
	if runs := SenderRuns(t, DrainAll(t, q, "r")); runs["0"] != 10 {
		t.Fatalf("after the restart, drained %v", runs)
	}
	Enqueue(t, q, "s", "0:0", "r")
	if got := DrainAll(t, q, "r"); len(got) != 1 {
		t.Fatalf("drained %d after a new Enqueue", len(got))
	}
	q.check(t)
}
