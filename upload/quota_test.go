package upload

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/refusal"

	bolt "go.etcd.io/bbolt"
)

// Slots requested together before any upload hold their sizes: ten 90 KB
// slots against a 100 KB daily quota, then against each stored quota, get
// one slot, not ten (they all passed when only completed uploads counted).
func TestQuotaHoldsPendingSlots(t *testing.T) { forEachRecords(t, testQuotaHoldsPendingSlots) }

func testQuotaHoldsPendingSlots(t *testing.T, rb recordsBackend) {
	for _, c := range []struct {
		name  string
		quota Quota
		want  string
	}{
		{"daily", Quota{DailyBytes: 100 << 10}, "Daily upload quota"},
		{"user", Quota{UserBytes: 100 << 10}, "Your storage quota"},
		{"domain", Quota{DomainBytes: 100 << 10}, "quota of example.net"},
		{"total", Quota{TotalBytes: 100 << 10}, "service's storage"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newDiskFixture(t, rb)
			f.svc.opt.Quota = c.quota
			ctx := context.Background()
			var slots []Slot
			for i := range 10 {
				s, err := f.svc.Issue(ctx, f.request("alice@example.net", 90<<10))
				if err == nil {
					slots = append(slots, s)
					continue
				}
				ref := refused(t, err)
				if ref.Kind != refusal.OverQuota || !strings.Contains(ref.Text, c.want) || !strings.Contains(ref.Text, "90.0 KiB in pending uploads") {
					t.Fatalf("slot %d: %+v", i, ref)
				}
				// the hold ends with the slot's upload window
				if want := f.clock.now().Add(f.svc.opt.SlotLifetime); !ref.RetryAt.Equal(want) {
					t.Fatalf("slot %d: retry at %v, want %v", i, ref.RetryAt, want)
				}
			}
			if len(slots) != 1 {
				t.Fatalf("%d slots of 90 KB issued against a 100 KB quota, want 1", len(slots))
			}
			for _, s := range slots {
				f.put(t, s, make([]byte, 90<<10))
			}
			if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 20<<10)); err == nil {
				t.Fatal("over the quota after the upload")
			}
			if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 10<<10)); err != nil {
				t.Fatalf("a slot that fits beside the upload: %v", err)
			}
		})
	}
}

// Slot requests racing each other (and racing their records' commits,
// which the writer holds back) are granted exactly as many as fit; racing
// the uploads of those, none is granted, and what is stored stays within
// the quota.
func TestQuotaExactUnderConcurrency(t *testing.T) { forEachRecords(t, testQuotaExactUnderConcurrency) }

func testQuotaExactUnderConcurrency(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota = Quota{DailyBytes: 7 * 1000, TotalBytes: 1 << 20}
	release := make(chan struct{})
	if f.writer != nil {
		// records wait for their commits
		if err := f.writer.Submit(context.Background(), func(*bolt.Tx) error { <-release; return nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	const n = 40
	var mu sync.Mutex
	var granted []Slot
	race := func(extra func()) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				s, err := f.svc.Issue(context.Background(), f.request("alice@example.net", 1000))
				if err != nil {
					if refused(t, err).Kind != refusal.OverQuota {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				granted = append(granted, s)
				mu.Unlock()
			})
		}
		wg.Go(func() { <-start; extra() })
		close(start)
		wg.Wait()
	}
	race(func() {})
	close(release)
	if len(granted) != 7 {
		t.Fatalf("%d of %d racing slots of 1000 bytes granted against 7000, want 7", len(granted), n)
	}
	uploads := granted
	granted = nil
	race(func() {
		var wg sync.WaitGroup
		for _, s := range uploads {
			wg.Go(func() {
				if resp, _ := do(t, "PUT", f.url(s.PutURL), make([]byte, 1000), nil); resp.StatusCode != http.StatusCreated {
					t.Errorf("PUT: %s", resp.Status)
				}
			})
		}
		wg.Wait()
	})
	if stored, _ := f.svc.StoredBytes(); len(granted) != 0 || stored != 7000 {
		t.Fatalf("racing the uploads: %d more slots granted, %d bytes stored; want 0 and 7000", len(granted), stored)
	}
}

// A hold ends when its slot's upload window closes unused, and when a
// slot is uploaded, its hold becomes usage without counting twice.
func TestQuotaHoldEnds(t *testing.T) { forEachRecords(t, testQuotaHoldEnds) }

func testQuotaHoldEnds(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota = Quota{DailyBytes: 1000}
	ctx := context.Background()
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 800)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 800)); err == nil {
		t.Fatal("second slot beside a pending one")
	}
	f.clock.add(f.svc.opt.SlotLifetime)
	s, err := f.svc.Issue(ctx, f.request("alice@example.net", 800))
	if err != nil {
		t.Fatalf("after the first slot's window closed unused: %v", err)
	}
	f.put(t, s, make([]byte, 800))
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 200)); err != nil {
		t.Fatalf("the upload counts twice: %v", err)
	}
}

// Holds survive a restart: they are rebuilt from the pending records,
// which need no field of their own (files written before holds work).
func TestQuotaHoldsAfterRestart(t *testing.T) { forEachRecords(t, testQuotaHoldsAfterRestart) }

func testQuotaHoldsAfterRestart(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota = Quota{DailyBytes: 100 << 10}
	ctx := context.Background()
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 90<<10)); err != nil {
		t.Fatal(err)
	}
	g := f.restart(t)
	if _, err := g.svc.Issue(ctx, f.request("alice@example.net", 20<<10)); err == nil {
		t.Fatal("a pending slot stopped counting at restart")
	}
}

// The PUT checks the quota again (it may have been lowered since the slot
// was issued): 413 with Retry-After and the slot refusal's text, nothing
// stored, and the slot usable once it fits.
func TestQuotaCheckedAtPut(t *testing.T) { forEachRecords(t, testQuotaCheckedAtPut) }

func testQuotaCheckedAtPut(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota = Quota{DailyBytes: 1000}
	ctx := context.Background()
	first, _ := f.svc.Issue(ctx, f.request("alice@example.net", 400))
	f.put(t, first, make([]byte, 400))
	f.clock.add(time.Hour)
	s, err := f.svc.Issue(ctx, f.request("alice@example.net", 500))
	if err != nil {
		t.Fatal(err)
	}
	f.svc.opt.Quota.DailyBytes = 800
	resp, body := do(t, "PUT", f.url(s.PutURL), make([]byte, 500), nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "Daily upload quota") {
		t.Fatalf("PUT over a lowered quota: %s %q", resp.Status, body)
	}
	if at, err := http.ParseTime(resp.Header.Get("Retry-After")); err != nil || !at.Equal(f.clock.now().Add(23*time.Hour).Truncate(time.Second)) {
		t.Fatalf("Retry-After %q, want when the first upload leaves the window", resp.Header.Get("Retry-After"))
	}
	if resp, _ := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET after a refused PUT: %s", resp.Status)
	}
	f.svc.opt.Quota.DailyBytes = 1000
	f.put(t, s, make([]byte, 500))
}
