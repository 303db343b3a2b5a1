// Package queuetest is the conformance suite every offline.Queue passes,
// so that the bbolt and PostgreSQL queues cannot drift apart in what they
// promise the relay: order per recipient, at-least-once delivery with
// deletion only after deliver returned nil, the caps of every scope (exact
// under concurrency), TTL and Purge, MarkSeen, Stats, one Drain of a
// recipient at a time, and order under concurrent enqueues and drains.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/offline"
)

// Instance is one queue under test, with the hooks the suite needs.
type Instance struct {
	offline.Queue
	// Check, if not nil, fails the test when what the backend stores
	// disagrees with itself (counters against entries, indexes against
	// records): the state a refused, purged or concurrent write must
	// never leave behind.
	Check func(t testing.TB)
	// Restart closes the queue and opens its storage again, as a restart
	// of mediaslot does, with the same limits and clock.
	Restart func(t testing.TB) Instance
	// Another, if not nil, opens a second queue on the same storage, as a
	// second mediaslot process sharing a database would: the suite races
	// the two where a backend shares state between processes.
	Another func(t testing.TB) Instance
}

// Open returns a queue on fresh, empty storage, with limits l, whose
// clock is now (the Accepted time of what it stores, and its TTL checks).
type Open func(t testing.TB, l offline.Limits, now func() time.Time) Instance

// Clock is a settable clock for Open's now: the wall clock until Set.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the time set last, or the wall clock if none was set.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

// Set makes Now return t from now on.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Enqueue enqueues stanza, failing the test on any error.
func Enqueue(tb testing.TB, q offline.Queue, sender string, stanza string, recipients ...string) {
	tb.Helper()
	if err := q.Enqueue(context.Background(), sender, recipients, []byte(stanza)); err != nil {
		tb.Fatalf("Enqueue(%s -> %v): %v", sender, recipients, err)
	}
}

// DrainAll drains recipient and returns what was delivered.
func DrainAll(tb testing.TB, q offline.Queue, recipient string) []offline.Entry {
	tb.Helper()
	var got []offline.Entry
	n, err := q.Drain(context.Background(), recipient, func(e offline.Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil || n != len(got) {
		tb.Fatalf("Drain(%s) = %d, %v; delivered %d", recipient, n, err, len(got))
	}
	return got
}

// Stanzas returns the stanzas of entries, as strings.
func Stanzas(entries []offline.Entry) []string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = string(e.Stanza)
	}
	return s
}

// Refusal returns the *LimitError Enqueue returned, failing the test if it
// returned something else.
func Refusal(t testing.TB, q offline.Queue, sender string, stanza string, recipients ...string) *offline.LimitError {
	t.Helper()
	err := q.Enqueue(context.Background(), sender, recipients, []byte(stanza))
	var le *offline.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Enqueue(%s -> %v) = %v; want a *LimitError", sender, recipients, err)
	}
	return le
}

// SenderRuns checks that entries, whose stanzas start with a line "g:i",
// come in Seq order and that each sender g's i run 0, 1, 2… with nothing
// lost or repeated. It returns how many entries each sender has.
func SenderRuns(t testing.TB, entries []offline.Entry) map[string]int {
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

// check runs the instance's consistency check, if it has one.
func (q Instance) check(t testing.TB) {
	t.Helper()
	if q.Check != nil {
		q.Check(t)
	}
}

// stats returns q's Stats, failing the test on an error.
func stats(t testing.TB, q offline.Queue) offline.Stats {
	t.Helper()
	s, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// group returns n recipient names.
func group(n int) []string {
	g := make([]string, n)
	for i := range g {
		g[i] = fmt.Sprintf("member%d", i)
	}
	return g
}

// Run runs the suite against the queues made by open, each subtest on its
// own storage.
func Run(t *testing.T, open Open) {
	t.Run("Order", func(t *testing.T) { testOrder(t, open) })
	t.Run("AllOrNothing", func(t *testing.T) { testAllOrNothing(t, open) })
	t.Run("RecipientCaps", func(t *testing.T) { testRecipientCaps(t, open) })
	t.Run("DistinctRecipients", func(t *testing.T) { testDistinctRecipients(t, open) })
	t.Run("DrainStopsAtFailure", func(t *testing.T) { testDrainStopsAtFailure(t, open) })
	t.Run("DrainStopsWhenContextEnds", func(t *testing.T) { testDrainStopsWhenContextEnds(t, open) })
	t.Run("DeletedOnlyAfterDeliver", func(t *testing.T) { testDeletedOnlyAfterDeliver(t, open) })
	t.Run("AtLeastOnce", func(t *testing.T) { testAtLeastOnce(t, open) })
	t.Run("OneDrainAtATime", func(t *testing.T) { testOneDrainAtATime(t, open) })
	t.Run("Purge", func(t *testing.T) { testPurge(t, open) })
	t.Run("PurgeDuringDrain", func(t *testing.T) { testPurgeDuringDrain(t, open) })
	t.Run("Stats", func(t *testing.T) { testStats(t, open) })
	t.Run("ConcurrentEnqueue", func(t *testing.T) { testConcurrentEnqueue(t, open) })
	t.Run("OrderWhileDraining", func(t *testing.T) { testOrderWhileDraining(t, open) })
	t.Run("SenderCaps", func(t *testing.T) { testSenderCaps(t, open) })
	t.Run("QueueCaps", func(t *testing.T) { testQueueCaps(t, open) })
	t.Run("SenderShare", func(t *testing.T) { testSenderShare(t, open) })
	t.Run("UnseenRecipients", func(t *testing.T) { testUnseenRecipients(t, open) })
	t.Run("MarkSeenBeforePurge", func(t *testing.T) { testMarkSeenBeforePurge(t, open) })
	t.Run("UnseenShare", func(t *testing.T) { testUnseenShare(t, open) })
	t.Run("DrainDropsExpired", func(t *testing.T) { testDrainDropsExpired(t, open) })
	t.Run("CapsExactUnderRace", func(t *testing.T) { testCapsExactUnderRace(t, open) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, open) })
}
