// Package slotstoretest is the conformance suite of slotstore.Store: every
// backend runs Run, so that they keep the same promises.
package slotstoretest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediaslot/upload/slotstore"
)

// Opener returns a Store on one database; each call after the first is a
// restart: a new Store on the same data, nothing of the previous one's
// memory kept (the previous one is not used again).
type Opener func(t *testing.T) slotstore.Store

// Run runs the suite; newDB makes a fresh, empty database for each test.
func Run(t *testing.T, newDB func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Records", testRecords},
		{"CompleteOnce", testCompleteOnce},
		{"ForgetAndExpire", testForgetAndExpire},
		{"Due", testDue},
		{"QuotaFacts", testQuotaFacts},
		{"Holds", testHolds},
		{"HoldsOfUploads", testHoldsOfUploads},
		{"HoldsAfterRestart", testHoldsAfterRestart},
		{"DailyWindow", testDailyWindow},
		{"SumsCannotOverflow", testSumsCannotOverflow},
		{"RaceIssue", testRaceIssue},
		{"RaceIssueAndComplete", testRaceIssueAndComplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

// t0 is the suite's clock: whole microseconds, which every backend keeps.
var t0 = time.Date(2026, 11, 25, 8, 0, 0, 123456000, time.UTC)

const window = 5 * time.Minute

var ctx = context.Background()

// rec is a pending slot's record of owner for size bytes, issued at now.
func rec(owner string, size int64, now time.Time) slotstore.Record {
	return slotstore.Record{Owner: owner, Filename: "f.bin", Size: size, Issued: now, Expires: now.Add(window).Truncate(time.Second),
		DeleteAfter: now.Add(7 * 24 * time.Hour).Truncate(time.Second)}
}

func id(n int) string { return fmt.Sprintf("%032x", n) }

// issue issues a slot that must fit.
func issue(t *testing.T, s slotstore.Store, id string, r slotstore.Record, q slotstore.Quota, now time.Time) {
	t.Helper()
	if over, err := s.Issue(ctx, id, r, r.Expires, q, now); err != nil || over != nil {
		t.Fatalf("issue %s: %+v %v", id, over, err)
	}
}

// over issues a slot that must not fit, and returns the facts.
func over(t *testing.T, s slotstore.Store, id string, r slotstore.Record, q slotstore.Quota, now time.Time) slotstore.Over {
	t.Helper()
	o, err := s.Issue(ctx, id, r, r.Expires, q, now)
	if err != nil || o == nil {
		t.Fatalf("issue %s over %+v: %+v %v", id, q, o, err)
	}
	if _, err := s.Lookup(ctx, id); !errors.Is(err, slotstore.ErrNotFound) {
		t.Fatalf("a slot refused was recorded: %v", err)
	}
	return *o
}

func complete(t *testing.T, s slotstore.Store, id string, now time.Time) slotstore.Record {
	t.Helper()
	r, was, err := s.Complete(ctx, id, now, "application/octet-stream")
	if err != nil || was || !r.Complete {
		t.Fatalf("complete %s: %+v %v %v", id, r, was, err)
	}
	return r
}

func sameRecord(a, b slotstore.Record) bool {
	return a.Owner == b.Owner && a.Filename == b.Filename && a.Size == b.Size && a.ContentType == b.ContentType &&
		a.Purpose == b.Purpose && a.Issued.Equal(b.Issued) && a.Expires.Equal(b.Expires) && a.DeleteAfter.Equal(b.DeleteAfter) &&
		a.Complete == b.Complete && a.Stored.Equal(b.Stored) && a.StoredType == b.StoredType
}

func stored(t *testing.T, s slotstore.Store, want int64) {
	t.Helper()
	if n, err := s.StoredBytes(ctx); err != nil || n != want {
		t.Fatalf("stored bytes %d %v, want %d", n, err, want)
	}
}

// A record reads back as issued, before and after a restart; an unknown
// slot is ErrNotFound.
func testRecords(t *testing.T, open Opener) {
	s := open(t)
	r := slotstore.Record{Owner: "alice@example.net", Filename: "cat <1> & \"dog\" é.png", Size: 1234, ContentType: "image/png",
		Purpose: "ephemeral", Issued: t0, Expires: t0.Add(window).Truncate(time.Second), DeleteAfter: t0.Add(time.Hour)}
	issue(t, s, id(1), r, slotstore.Quota{}, t0)
	permanent := rec("alice@example.net", 5, t0)
	permanent.DeleteAfter = time.Time{}
	issue(t, s, id(2), permanent, slotstore.Quota{}, t0)
	for restarted := range 2 {
		if restarted == 1 {
			s = open(t)
		}
		if got, err := s.Lookup(ctx, id(1)); err != nil || !sameRecord(got, r) {
			t.Fatalf("lookup: %+v %v, want %+v", got, err, r)
		}
		if got, err := s.Lookup(ctx, id(2)); err != nil || !sameRecord(got, permanent) || !got.DeleteAfter.IsZero() {
			t.Fatalf("lookup of a permanent slot: %+v %v", got, err)
		}
		if _, err := s.Lookup(ctx, id(3)); !errors.Is(err, slotstore.ErrNotFound) {
			t.Fatalf("lookup of an unknown slot: %v", err)
		}
	}
}

// Complete turns a pending slot into a stored file once: the second time
// changes nothing and says so; the record is durable.
func testCompleteOnce(t *testing.T, open Opener) {
	s := open(t)
	r := rec("alice@example.net", 1000, t0)
	issue(t, s, id(1), r, slotstore.Quota{}, t0)
	at := t0.Add(time.Minute)
	got := complete(t, s, id(1), at)
	if !got.Stored.Equal(at) || got.StoredType != "application/octet-stream" || got.Size != 1000 {
		t.Fatalf("completed record %+v", got)
	}
	again, was, err := s.Complete(ctx, id(1), at.Add(time.Minute), "text/plain")
	if err != nil || !was || !again.Stored.Equal(at) || again.StoredType != "application/octet-stream" {
		t.Fatalf("second complete: %+v %v %v", again, was, err)
	}
	stored(t, s, 1000)
	if _, _, err := s.Complete(ctx, id(9), at, "x/y"); !errors.Is(err, slotstore.ErrNotFound) {
		t.Fatalf("complete of an unknown slot: %v", err)
	}
	s = open(t)
	if got, err := s.Lookup(ctx, id(1)); err != nil || !got.Complete || !got.Stored.Equal(at) {
		t.Fatalf("after a restart: %+v %v", got, err)
	}
	stored(t, s, 1000)
}

// Forget removes pending slots only; Expire removes stored files only and
// uncounts them.
func testForgetAndExpire(t *testing.T, open Opener) {
	s := open(t)
	issue(t, s, id(1), rec("alice@example.net", 100, t0), slotstore.Quota{}, t0)
	issue(t, s, id(2), rec("alice@example.net", 200, t0), slotstore.Quota{}, t0)
	complete(t, s, id(2), t0)
	for _, x := range []string{id(1), id(2), id(3)} {
		if err := s.Forget(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Lookup(ctx, id(1)); !errors.Is(err, slotstore.ErrNotFound) {
		t.Fatalf("a forgotten slot: %v", err)
	}
	if r, err := s.Lookup(ctx, id(2)); err != nil || !r.Complete {
		t.Fatalf("Forget removed a stored file: %+v %v", r, err)
	}
	issue(t, s, id(4), rec("alice@example.net", 400, t0), slotstore.Quota{}, t0)
	for _, x := range []string{id(2), id(4), id(3)} {
		if err := s.Expire(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Lookup(ctx, id(2)); !errors.Is(err, slotstore.ErrNotFound) {
		t.Fatalf("an expired file: %v", err)
	}
	if _, err := s.Lookup(ctx, id(4)); err != nil {
		t.Fatalf("Expire removed a pending slot: %v", err)
	}
	stored(t, s, 0)
	if ids, _ := s.DueExpired(ctx, t0.Add(365*24*time.Hour), 10); len(ids) != 0 {
		t.Fatalf("an expired file is still due: %v", ids)
	}
}

// DuePending and DueExpired list what is due before a time, earliest
// first, at most n; files that are never deleted are never due.
func testDue(t *testing.T, open Opener) {
	expiring := func(now time.Time) slotstore.Record {
		r := rec("alice@example.net", 10, now)
		r.DeleteAfter = now.Add(time.Hour)
		return r
	}
	s := open(t)
	var pending, files []string
	for i := range 5 {
		now := t0.Add(time.Duration(4-i) * time.Minute) // issued in reverse order of id
		issue(t, s, id(i), expiring(now), slotstore.Quota{}, now)
		pending = append([]string{id(i)}, pending...)
	}
	permanent := rec("bob@example.net", 10, t0.Add(time.Hour))
	permanent.DeleteAfter = time.Time{}
	issue(t, s, id(10), permanent, slotstore.Quota{}, t0.Add(time.Hour))
	due, err := s.DuePending(ctx, t0.Add(window+2*time.Minute+time.Second), 2)
	if err != nil || len(due) != 2 || due[0].ID != pending[0] || due[1].ID != pending[1] {
		t.Fatalf("due pending %v %v, want %v", due, err, pending[:2])
	}
	if r := expiring(t0); !sameRecord(due[0].Record, r) {
		t.Fatalf("due pending with record %+v, want %+v", due[0].Record, r)
	}
	if got, _ := s.DuePending(ctx, t0.Add(window+2*time.Minute+time.Second), 10); len(got) != 3 {
		t.Fatalf("due pending before the window of the fourth closed: %v", got)
	}
	for i := range 5 {
		complete(t, s, id(i), t0.Add(time.Minute))
		files = append([]string{id(i)}, files...)
	}
	complete(t, s, id(10), t0)
	if got, _ := s.DuePending(ctx, t0.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("complete slots are due as pending: %v", got)
	}
	got, err := s.DueExpired(ctx, t0.Add(time.Hour+2*time.Minute+time.Second), 10)
	if err != nil || !slices.Equal(got, files[:3]) {
		t.Fatalf("due expired %v %v, want %v", got, err, files[:3])
	}
	if got, _ := s.DueExpired(ctx, t0.Add(100*365*24*time.Hour), 100); len(got) != 5 {
		t.Fatalf("due expired in a century: %v (files never deleted are never due)", got)
	}
}

// Over says which quota, what is used, what pending slots hold and when
// enough is freed; the quotas are checked in Scope order.
func testQuotaFacts(t *testing.T, open Opener) {
	s := open(t)
	q0 := slotstore.Quota{}
	// alice: 2000 stored (deleted after 7 days), uploaded at t0+1m;
	// bob (same domain): 3000 stored, never deleted; carol (another
	// domain): 400 stored, deleted after a day; alice: 1000 pending.
	a := rec("alice@example.net", 2000, t0)
	issue(t, s, id(1), a, q0, t0)
	complete(t, s, id(1), t0.Add(time.Minute))
	b := rec("bob@example.net", 3000, t0)
	b.DeleteAfter = time.Time{}
	issue(t, s, id(2), b, q0, t0)
	complete(t, s, id(2), t0.Add(time.Minute))
	c := rec("carol@example.org", 400, t0)
	c.DeleteAfter = t0.Add(24 * time.Hour).Truncate(time.Second)
	issue(t, s, id(3), c, q0, t0)
	complete(t, s, id(3), t0.Add(time.Minute))
	now := t0.Add(2 * time.Minute)
	issue(t, s, id(4), rec("alice@example.net", 1000, now), slotstore.Quota{User: 1 << 40}, now)
	daily := t0.Truncate(time.Minute).Add(2*time.Minute + slotstore.DailyWindow)
	for _, c := range []struct {
		q    slotstore.Quota
		want slotstore.Over
	}{
		{slotstore.Quota{Daily: 3000}, slotstore.Over{Scope: slotstore.Daily, Limit: 3000, Used: 2000, Held: 1000, Freed: daily}},
		{slotstore.Quota{Daily: 3000, User: 1}, slotstore.Over{Scope: slotstore.Daily, Limit: 3000, Used: 2000, Held: 1000, Freed: daily}},
		{slotstore.Quota{User: 3000}, slotstore.Over{Scope: slotstore.User, Limit: 3000, Used: 2000, Held: 1000, Freed: a.DeleteAfter}},
		{slotstore.Quota{Domain: 6000}, slotstore.Over{Scope: slotstore.Domain, Limit: 6000, Used: 5000, Held: 1000, Freed: a.DeleteAfter}},
		{slotstore.Quota{Total: 6400}, slotstore.Over{Scope: slotstore.Total, Limit: 6400, Used: 5400, Held: 1000, Freed: c.DeleteAfter}},
		// freeing 3000 takes alice's file and bob's, which is never deleted
		{slotstore.Quota{Domain: 4000}, slotstore.Over{Scope: slotstore.Domain, Limit: 4000, Used: 5000, Held: 1000}},
		{slotstore.Quota{User: 1000}, slotstore.Over{Scope: slotstore.User, Limit: 1000, Used: 2000, Held: 1000}},
	} {
		got := over(t, s, id(5), rec("alice@example.net", 1, now), c.q, now)
		if got.Scope != c.want.Scope || got.Limit != c.want.Limit || got.Used != c.want.Used || got.Held != c.want.Held || !got.Freed.Equal(c.want.Freed) {
			t.Errorf("%+v: %+v, want %+v", c.q, got, c.want)
		}
	}
	// bob's own quota does not count alice's
	issue(t, s, id(6), rec("bob@example.net", 1, now), slotstore.Quota{Daily: 3001, User: 3001}, now)
	if n, _ := s.StoredBytes(ctx); n != 5400 {
		t.Fatalf("stored %d, want 5400 (pending slots are not stored)", n)
	}
}

// A pending slot holds its size until its holdUntil (zero: until it is
// forgotten or completed); completed, its size counts once, as used.
func testHolds(t *testing.T, open Opener) {
	s := open(t)
	q := slotstore.Quota{User: 1000}
	issue(t, s, id(1), rec("alice@example.net", 800, t0), q, t0)
	over(t, s, id(2), rec("alice@example.net", 800, t0), q, t0)
	later := t0.Add(window)
	issue(t, s, id(2), rec("alice@example.net", 800, later), q, later) // the first hold ended
	// a hold with no end
	r := rec("bob@example.net", 800, t0)
	if o, err := s.Issue(ctx, id(3), r, time.Time{}, q, t0); err != nil || o != nil {
		t.Fatal(o, err)
	}
	over(t, s, id(4), rec("bob@example.net", 800, later.Add(time.Hour)), q, later.Add(time.Hour))
	if err := s.Forget(ctx, id(3)); err != nil {
		t.Fatal(err)
	}
	issue(t, s, id(4), rec("bob@example.net", 800, later.Add(time.Hour)), q, later.Add(time.Hour))
	// completed: counted once
	now := later.Add(time.Minute)
	complete(t, s, id(2), now)
	issue(t, s, id(5), rec("alice@example.net", 200, now), q, now)
	over(t, s, id(6), rec("alice@example.net", 1, now), q, now)
	// a completed hold whose window has closed counts as used
	done := later.Add(time.Hour)
	complete(t, s, id(5), done)
	o := over(t, s, id(6), rec("alice@example.net", 1, done), q, done)
	if o.Used != 1000 || o.Held != 0 {
		t.Fatalf("after both uploads: %+v", o)
	}
}

// StartUpload keeps a hold past its holdUntil until EndUpload, checks the
// quota again (ending the hold of a slot that no longer fits), and counts
// the slot's size once.
func testHoldsOfUploads(t *testing.T, open Opener) {
	s := open(t)
	q := slotstore.Quota{Daily: 1000}
	issue(t, s, id(1), rec("alice@example.net", 800, t0), q, t0)
	if o, err := s.StartUpload(ctx, id(1), q, t0.Add(time.Minute)); err != nil || o != nil {
		t.Fatalf("start: %+v %v", o, err)
	}
	after := t0.Add(window + time.Minute)
	over(t, s, id(2), rec("alice@example.net", 800, after), q, after)
	if err := s.EndUpload(ctx, id(1), after); err != nil {
		t.Fatal(err)
	}
	issue(t, s, id(2), rec("alice@example.net", 800, after), q, after)
	// a slot whose hold ended is checked with its size again
	late := after.Add(time.Second)
	o, err := s.StartUpload(ctx, id(1), q, late)
	if err != nil || o == nil || o.Scope != slotstore.Daily || o.Held != 800 {
		t.Fatalf("start beside another hold: %+v %v", o, err)
	}
	// and one that fits is held again, once
	if o, err := s.StartUpload(ctx, id(2), q, late); err != nil || o != nil {
		t.Fatalf("start of a held slot: %+v %v", o, err)
	}
	if o := over(t, s, id(3), rec("alice@example.net", 201, late), q, late); o.Held != 800 {
		t.Fatalf("held %d, want 800", o.Held)
	}
	// a quota lowered since: the PUT is refused and its hold ends
	low := slotstore.Quota{Daily: 500}
	if o, err := s.StartUpload(ctx, id(2), low, late); err != nil || o == nil {
		t.Fatalf("start over a lowered quota: %+v %v", o, err)
	}
	issue(t, s, id(3), rec("alice@example.net", 1000, late), q, late)
	if _, err := s.StartUpload(ctx, id(99), q, late); !errors.Is(err, slotstore.ErrNotFound) {
		t.Fatalf("start of an unknown slot: %v", err)
	}
}

// Holds of pending slots survive a restart.
func testHoldsAfterRestart(t *testing.T, open Opener) {
	s := open(t)
	q := slotstore.Quota{Daily: 1000, User: 1000, Domain: 1000, Total: 1000}
	issue(t, s, id(1), rec("alice@example.net", 900, t0), q, t0)
	s = open(t)
	for _, x := range []slotstore.Quota{{Daily: 1000}, {User: 1000}, {Domain: 1000}, {Total: 1000}} {
		owner := "carol@example.net" // the domain's and the service's quota
		if x.Daily+x.User > 0 {
			owner = "alice@example.net"
		}
		if o := over(t, s, id(2), rec(owner, 200, t0), x, t0); o.Held != 900 {
			t.Errorf("%+v: %+v", x, o)
		}
	}
	s = open(t) // the hold ends at its window after a restart too
	issue(t, s, id(2), rec("alice@example.net", 900, t0.Add(window)), q, t0.Add(window))
}

// An upload counts against the daily quota for 24 hours from the minute
// after it (DailyStamp), and no longer; expiring it changes nothing.
func testDailyWindow(t *testing.T, open Opener) {
	s := open(t)
	q := slotstore.Quota{Daily: 1000}
	issue(t, s, id(1), rec("alice@example.net", 600, t0), q, t0)
	complete(t, s, id(1), t0.Add(time.Second))
	if err := s.Expire(ctx, id(1)); err != nil {
		t.Fatal(err)
	}
	end := slotstore.DailyStamp(t0.Add(time.Second)).Add(slotstore.DailyWindow)
	o := over(t, s, id(2), rec("alice@example.net", 600, end.Add(-time.Second)), q, end.Add(-time.Second))
	if o.Used != 600 || !o.Freed.Equal(end) {
		t.Fatalf("before the window ends: %+v, want freed at %v", o, end)
	}
	after := end.Add(time.Second)
	issue(t, s, id(2), rec("alice@example.net", 1000, after), q, after)
}

// Sums never wrap round: a slot of math.MaxInt64 bytes beside a pending
// or stored one is over every quota, not under it.
func testSumsCannotOverflow(t *testing.T, open Opener) {
	s := open(t)
	for i, q := range []slotstore.Quota{{Daily: 1 << 40}, {User: 1 << 40}, {Domain: 1 << 40}, {Total: 1 << 40}} {
		owner := fmt.Sprintf("u%d@d%d.example", i, i)
		issue(t, s, id(10*i), rec(owner, 1000, t0), q, t0)
		for _, size := range []int64{math.MaxInt64, math.MaxInt64 - 500, math.MaxInt64 - 1000} {
			if o := over(t, s, id(10*i+1), rec(owner, size, t0), q, t0); o.Held != 1000 {
				t.Fatalf("%+v: %+v", q, o)
			}
		}
		complete(t, s, id(10*i), t0)
		over(t, s, id(10*i+1), rec(owner, math.MaxInt64, t0), q, t0)
	}
}

// racers and rounds of the race tests.
const racers, rounds = 16, 25

// race runs fn from racers goroutines at once and returns how many
// returned true.
func race(fn func(i int) bool) int {
	var wg sync.WaitGroup
	var n atomic.Int32
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			if fn(i) {
				n.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(n.Load())
}

// Slot requests that race are granted exactly as many as fit, for each
// quota: the owner's (daily, stored), and their domain's and the
// service's, raced by different owners.
func testRaceIssue(t *testing.T, open Opener) {
	s := open(t)
	const size, fit = 1000, 3
	n, k := 0, 0
	for _, c := range []struct {
		name  string
		q     slotstore.Quota
		owner func(round, i int) string
	}{
		{"daily", slotstore.Quota{Daily: fit * size}, func(r, _ int) string { return fmt.Sprintf("u%d@daily.example", r) }},
		{"user", slotstore.Quota{User: fit * size}, func(r, _ int) string { return fmt.Sprintf("u%d@user.example", r) }},
		{"domain", slotstore.Quota{Domain: fit * size}, func(r, i int) string { return fmt.Sprintf("u%d@d%d.example", i, r) }},
		{"total", slotstore.Quota{Total: fit * size}, func(r, i int) string { return fmt.Sprintf("u%d@t%d.example", i, r) }},
	} {
		for round := range rounds {
			now := t0.Add(time.Duration(k) * (window + time.Second)) // the last round's holds ended
			k++
			base := n
			granted := race(func(i int) bool {
				o, err := s.Issue(ctx, id(base+i), rec(c.owner(round, i), size, now), now.Add(window), c.q, now)
				if err != nil {
					t.Error(err)
				}
				return err == nil && o == nil
			})
			n += racers
			if granted != fit {
				t.Fatalf("%s, round %d: %d of %d racing slots of %d bytes granted against %d", c.name, round, granted, racers, size, fit*size)
			}
		}
	}
}

// Slot requests racing the completions of held slots (hold turned into
// usage) are granted exactly as many as fit: none counted twice, none
// missed.
func testRaceIssueAndComplete(t *testing.T, open Opener) {
	s := open(t)
	const size = 1000
	n := 0
	for round := range rounds {
		owner := fmt.Sprintf("u%d@example.net", round)
		q := slotstore.Quota{User: 10 * size, Daily: 10 * size}
		now := t0.Add(time.Duration(round) * time.Second)
		held := racers / 2
		for i := range held {
			issue(t, s, id(n+i), rec(owner, size, now), q, now)
		}
		stored(t, s, int64(round*held*size))
		base := n
		granted := race(func(i int) bool {
			if i < held {
				if _, _, err := s.Complete(ctx, id(base+i), now, "application/octet-stream"); err != nil {
					t.Error(err)
				}
				return false
			}
			o, err := s.Issue(ctx, id(base+i), rec(owner, size, now), now.Add(window), q, now)
			if err != nil {
				t.Error(err)
			}
			return err == nil && o == nil
		})
		n += racers
		if granted != 10-held {
			t.Fatalf("round %d: %d slots granted beside %d completing, want %d", round, granted, held, 10-held)
		}
	}
}
