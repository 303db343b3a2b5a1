package upload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mediaslot/refusal"
	"mediaslot/store"
	"mediaslot/store/disk"
	"mediaslot/testserver"
)

// A quota check cannot be wrapped round: with max_file_size set as high
// as it goes (the quotas doing the limiting), a slot of math.MaxInt64 bytes
// requested beside a pending or stored one made used + held + size
// overflow to a negative number, which passed every quota, and its hold
// then turned the domain's and the service's held sums negative, opening
// them to everybody else.
func TestQuotaSumCannotOverflow(t *testing.T) { forEachRecords(t, testQuotaSumCannotOverflow) }

func testQuotaSumCannotOverflow(t *testing.T, rb recordsBackend) {
	for _, c := range []struct {
		name  string
		quota Quota
	}{
		{"daily", Quota{DailyBytes: 1 << 40}},
		{"user", Quota{UserBytes: 1 << 40}},
		{"domain", Quota{DomainBytes: 1 << 40}},
		{"total", Quota{TotalBytes: 1 << 40}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newDiskFixture(t, rb)
			f.svc.opt.MaxFileSize = math.MaxInt64
			f.svc.opt.Quota = c.quota
			ctx := context.Background()
			s, err := f.svc.Issue(ctx, f.request("alice@example.net", 1000))
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int64{math.MaxInt64, math.MaxInt64 - 500, math.MaxInt64 - 1000} {
				_, err := f.svc.Issue(ctx, f.request("alice@example.net", size))
				if ref := refused(t, err); ref.Kind != refusal.OverQuota || !ref.RetryAt.IsZero() {
					t.Fatalf("a slot of %d bytes beside a pending one: %+v", size, ref)
				}
			}
			f.put(t, s, make([]byte, 1000))
			if _, err := f.svc.Issue(ctx, f.request("alice@example.net", math.MaxInt64)); err == nil {
				t.Fatal("a slot of MaxInt64 bytes beside a stored one was issued")
			}
			// and the quota still counts for the others
			if _, err := f.svc.Issue(ctx, f.request("bob@example.net", 1<<40)); err == nil && c.quota.DailyBytes == 0 && c.quota.UserBytes == 0 {
				t.Fatal("the held sums went negative: a slot over the quota was issued")
			}
		})
	}
}

// halfPut sends a PUT of s declaring its whole size, writes half of the
// body and hangs up; then waits until the service has finished with it.
// before runs while the body is half sent.
func (f *fixture) halfPut(t *testing.T, s Slot, size int, before func()) {
	t.Helper()
	c := f.startHalfPut(t, s, size)
	if before != nil {
		before()
	}
	c.Close()
	f.waitPutEnded(t, s)
}

// startHalfPut sends a PUT of s declaring its whole size and writes half of
// the body; it returns the connection once the service is reading the body.
func (f *fixture) startHalfPut(t *testing.T, s Slot, size int) net.Conn {
	t.Helper()
	u, err := url.Parse(f.url(s.PutURL))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, size)
	if _, err := c.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	// the upload is running once its hold is kept for it
	testserver.WaitFor(t, 10*time.Second, "the PUT to start", func() bool {
		started, _ := f.svc.active.Load(s.ID)
		return started == true
	})
	return c
}

// waitPutEnded waits until the service has finished with a PUT of s.
func (f *fixture) waitPutEnded(t *testing.T, s Slot) {
	t.Helper()
	testserver.WaitFor(t, 10*time.Second, "the failed PUT to end", func() bool {
		_, busy := f.svc.active.Load(s.ID)
		return !busy
	})
}

// An upload cut off half-way neither leaks its slot's hold (locking its
// owner out of the quota for good) nor loses it while the slot may still
// be used: the client can retry the same URL, and once the window closes
// the bytes are free again, also when the window closed during the PUT.
func TestQuotaHoldAfterHalfUpload(t *testing.T) { forEachRecords(t, testQuotaHoldAfterHalfUpload) }

func testQuotaHoldAfterHalfUpload(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota = Quota{DailyBytes: 1000}
	ctx := context.Background()
	s, err := f.svc.Issue(ctx, f.request("alice@example.net", 800))
	if err != nil {
		t.Fatal(err)
	}
	f.halfPut(t, s, 800, nil)
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 800)); err == nil {
		t.Fatal("the hold of a slot whose upload failed ended while its URL is valid")
	}
	f.put(t, s, make([]byte, 800)) // the retry
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 200)); err != nil {
		t.Fatalf("after the retry: %v", err)
	}

	g := newDiskFixture(t, rb)
	g.svc.opt.Quota = Quota{DailyBytes: 1000}
	s, err = g.svc.Issue(ctx, g.request("alice@example.net", 800))
	if err != nil {
		t.Fatal(err)
	}
	g.halfPut(t, s, 800, nil)
	g.clock.add(g.svc.opt.SlotLifetime)
	if _, err := g.svc.Issue(ctx, g.request("alice@example.net", 800)); err != nil {
		t.Fatalf("the hold of a failed upload outlived its window: %v", err)
	}

	h := newDiskFixture(t, rb)
	h.svc.opt.Quota = Quota{DailyBytes: 1000}
	s, err = h.svc.Issue(ctx, h.request("alice@example.net", 800))
	if err != nil {
		t.Fatal(err)
	}
	// the window closes while the PUT runs: the hold stays until it fails
	h.halfPut(t, s, 800, func() {
		h.clock.add(h.svc.opt.SlotLifetime + time.Minute)
		if _, err := h.svc.Issue(ctx, h.request("alice@example.net", 800)); err == nil {
			t.Error("the hold of a running PUT ended with its window")
		}
	})
	if _, err := h.svc.Issue(ctx, h.request("alice@example.net", 800)); err != nil {
		t.Fatalf("the hold of an upload that failed after its window leaked: %v", err)
	}
	if _, err := h.svc.Issue(ctx, h.request("alice@example.net", 200)); err != nil {
		t.Errorf("a hold leaked: %v", err)
	}
}

// The content type of a slot is compared as a media type: case and
// parameters do not matter, and what the slot declared is served.
func TestPutContentTypeCaseAndParameters(t *testing.T) {
	f := newFixture(t)
	s := f.issue(t, "a.txt", 5, "Text/Plain; charset=UTF-8")
	resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("hello"), map[string]string{"Content-Type": "text/plain"})
	if resp.StatusCode != 201 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, body := do(t, "GET", f.url(s.GetURL), nil, nil)
	if resp.StatusCode != 200 || string(body) != "hello" || resp.Header.Get("Content-Type") != "Text/Plain; charset=UTF-8" {
		t.Fatalf("GET: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	s = f.issue(t, "b.txt", 5, "text/plain")
	resp, _ = do(t, "PUT", f.url(s.PutURL), []byte("hello"), map[string]string{"Content-Type": "text/html"})
	if resp.StatusCode != 415 {
		t.Fatalf("PUT of another type: %s", resp.Status)
	}
}

// A GET or HEAD of a slot whose upload is half done answers 404, never the
// bytes that have arrived; a sweep past the window and its grace leaves
// the running upload alone, and settles the slot once it has failed.
func TestGetAndSweepDuringPut(t *testing.T) { forEachRecords(t, testGetAndSweepDuringPut) }

func testGetAndSweepDuringPut(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota = Quota{DailyBytes: 1000}
	ctx := context.Background()
	s, err := f.svc.Issue(ctx, f.request("alice@example.net", 800))
	if err != nil {
		t.Fatal(err)
	}
	f.halfPut(t, s, 800, func() {
		for _, m := range []string{"GET", "HEAD"} {
			if resp, body := do(t, m, f.url(s.GetURL), nil, nil); resp.StatusCode != 404 || len(body) > 100 {
				t.Errorf("%s during the PUT: %s, %d bytes", m, resp.Status, len(body))
			}
		}
		f.clock.add(f.svc.opt.SlotLifetime + sweepGrace + time.Minute)
		if _, err := f.svc.Sweep(ctx); err != nil {
			t.Error(err)
		}
		if _, err := f.svc.lookup(ctx, s.ID); err != nil {
			t.Errorf("the sweep forgot a slot whose upload runs: %v", err)
		}
	})
	if _, err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.lookup(ctx, s.ID); err == nil {
		t.Error("the slot of the failed upload is still there")
	}
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 1000)); err != nil {
		t.Errorf("a hold is left: %v", err)
	}
}

// poisonedStore fails Stat and Delete for one key, as a disk store does
// for a file it may not touch (restored as root, say).
type poisonedStore struct {
	store.Store
	key *string
}

func (p poisonedStore) Stat(ctx context.Context, key string) (store.Info, error) {
	if key == *p.key {
		return store.Info{}, &fs.PathError{Op: "stat", Path: key, Err: syscall.EACCES}
	}
	return p.Store.Stat(ctx, key)
}

func (p poisonedStore) Delete(ctx context.Context, key string) error {
	if key == *p.key {
		return &fs.PathError{Op: "unlinkat", Path: key, Err: syscall.EACCES}
	}
	return p.Store.Delete(ctx, key)
}

// One slot whose file the store cannot touch does not stop the sweeper:
// the files due after it still expire (it was first in line, so every
// sweep stopped at it and the disk filled), and the pending slots after it
// are settled; the sweep reports the failure.
func TestSweepPastOnePoisonedSlot(t *testing.T) {
	for _, c := range []string{"expired", "pending"} {
		t.Run(c, func(t *testing.T) {
			disk, err := disk.New(filepath.Join(t.TempDir(), "files"))
			if err != nil {
				t.Fatal(err)
			}
			poisoned := ""
			f := newFixtureWith(t, poisonedStore{Store: disk, key: &poisoned}, Download{})
			f.svc.opt.FileLifetime = time.Hour
			f.svc.opt.Quota = Quota{UserBytes: 1000}
			ctx := context.Background()
			first, err := f.svc.Issue(ctx, f.request("alice@example.net", 500))
			if err != nil {
				t.Fatal(err)
			}
			if c == "expired" {
				f.put(t, first, make([]byte, 500))
			}
			poisoned = first.ID
			f.clock.add(time.Second)
			second, err := f.svc.Issue(ctx, f.request("alice@example.net", 500))
			if err != nil {
				t.Fatal(err)
			}
			if c == "expired" {
				f.put(t, second, make([]byte, 500))
			}
			f.clock.add(2 * time.Hour)
			if _, err := f.svc.Sweep(ctx); err == nil || !strings.Contains(err.Error(), first.ID) {
				t.Errorf("the sweep does not report the slot it could not settle: %v", err)
			}
			if _, err := f.svc.lookup(ctx, second.ID); !errors.Is(err, errNoSlot) {
				t.Fatalf("the slot after the poisoned one was not settled: %v", err)
			}
			if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 500)); err != nil {
				t.Fatalf("its bytes were not freed: %v", err)
			}
		})
	}
}

// The reconciliation at start goes on past a pending slot the store fails
// on: the whole files of crashed uploads after it are recorded.
func TestReconcilePastOnePoisonedSlot(t *testing.T) {
	d, err := disk.New(filepath.Join(t.TempDir(), "files"))
	if err != nil {
		t.Fatal(err)
	}
	poisoned := ""
	f := newFixtureWith(t, poisonedStore{Store: d, key: &poisoned}, Download{})
	first, err := f.svc.Issue(context.Background(), f.request("alice@example.net", 500))
	if err != nil {
		t.Fatal(err)
	}
	poisoned = first.ID
	f.clock.add(time.Second)
	s, _ := crashAfterStore(t, f)
	g := f.restart(t)
	g.svc.reconcile(context.Background())
	if rec, err := g.svc.lookup(context.Background(), s.ID); err != nil || !rec.Complete {
		t.Fatalf("the crashed upload after the poisoned slot: %+v %v", rec, err)
	}
}

// Slots abandoned faster than one batch a minute (1000: two accounts at the
// default slot rate issue 1200) are all settled by one sweep: they piled
// up in the file without end.
func TestSweepKeepsUpWithAbandonedSlots(t *testing.T) {
	forEachRecords(t, testSweepKeepsUpWithAbandonedSlots)
}

func testSweepKeepsUpWithAbandonedSlots(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	ctx := context.Background()
	const slots = 2*sweepBatch + 500
	for i := range slots {
		if _, err := f.svc.Issue(ctx, f.request(fmt.Sprintf("u%d@example.net", i%7), 10)); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.add(f.svc.opt.SlotLifetime + sweepGrace + time.Minute)
	if n, err := f.svc.Sweep(ctx); err != nil || n != slots {
		t.Fatalf("Sweep settled %d of %d abandoned slots: %v", n, slots, err)
	}
	if ids, err := f.svc.opt.Records.DuePending(ctx, endOfTime, 1); err != nil || len(ids) != 0 {
		t.Errorf("pending slots left: %v %v", ids, err)
	}
}
