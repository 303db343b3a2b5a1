package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"mediaslot/refusal"
	"mediaslot/upload/slotstore"
)

func refused(t *testing.T, err error) *refusal.Error {
	t.Helper()
	var ref *refusal.Error
	if !errors.As(err, &ref) {
		t.Fatalf("want a refusal, got %v", err)
	}
	return ref
}

func (f *fixture) put(t *testing.T, s Slot, body []byte) {
	t.Helper()
	if resp, _ := do(t, "PUT", f.url(s.PutURL), body, nil); resp.StatusCode != 201 {
		t.Fatalf("PUT: %s", resp.Status)
	}
}

func (f *fixture) request(owner string, size int64) Request {
	return Request{Owner: owner, Domain: slotstore.DomainOf(owner), Filename: "f.bin", Size: size}
}

func (r Request) withName(name string) Request { r.Filename = name; return r }

// The daily quota counts the uploads of the last 24 hours and says
// when the next upload will fit: when the oldest leave the window.
func TestDailyQuota(t *testing.T) { forEachRecords(t, testDailyQuota) }

func testDailyQuota(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.Quota.DailyBytes = 1000
	ctx := context.Background()
	first := f.clock.now()
	s1, _ := f.svc.Issue(ctx, f.request("alice@example.net", 600))
	f.put(t, s1, make([]byte, 600))
	f.clock.add(time.Hour)
	s2, _ := f.svc.Issue(ctx, f.request("alice@example.net", 300))
	f.put(t, s2, make([]byte, 300))

	_, err := f.svc.Issue(ctx, f.request("alice@example.net", 200))
	ref := refused(t, err)
	if ref.Kind != refusal.OverQuota || !ref.RetryAt.Equal(first.Add(24*time.Hour)) || !strings.Contains(ref.Text, "Daily upload quota") {
		t.Fatalf("refusal %+v, want OverQuota retrying at %v", ref, first.Add(24*time.Hour))
	}
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 100)); err != nil {
		t.Fatalf("an upload that fits was refused: %v", err)
	}
	if _, err := f.svc.Issue(ctx, f.request("bob@example.net", 900)); err != nil {
		t.Fatalf("bob pays for alice: %v", err)
	}
	// the 100-byte slot, never uploaded to, held its size only while its window was open
	f.clock.add(23*time.Hour + time.Second)
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 500)); err != nil {
		t.Fatalf("after the first upload left the window: %v", err)
	}
}

// Stored quotas (user, domain, total) are freed when files expire.
func TestStoredQuotasAndExpiry(t *testing.T) { forEachRecords(t, testStoredQuotasAndExpiry) }

func testStoredQuotasAndExpiry(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	f.svc.opt.FileLifetime = 48 * time.Hour
	f.svc.opt.Quota = Quota{UserBytes: 1000, DomainBytes: 1500, TotalBytes: 1800}
	ctx := context.Background()
	start := f.clock.now()
	a, _ := f.svc.Issue(ctx, f.request("alice@example.net", 800))
	f.put(t, a, make([]byte, 800))
	ref := refused(t, second(f.svc.Issue(ctx, f.request("alice@example.net", 300))))
	if ref.Kind != refusal.OverQuota || !strings.Contains(ref.Text, "Your storage quota") || ref.RetryAt.Before(start.Add(48*time.Hour)) {
		t.Fatalf("user quota: %+v", ref)
	}
	b, _ := f.svc.Issue(ctx, f.request("bob@example.net", 600))
	f.put(t, b, make([]byte, 600))
	if ref := refused(t, second(f.svc.Issue(ctx, f.request("carol@example.net", 200)))); !strings.Contains(ref.Text, "quota of example.net") {
		t.Fatalf("domain quota: %+v", ref)
	}
	if ref := refused(t, second(f.svc.Issue(ctx, f.request("dave@other.net", 500)))); ref.Kind != refusal.Forbidden {
		t.Fatalf("other domain: %+v", ref)
	}
	f.svc.opt.AllowedJIDs = []string{"dave@other.net"}
	if ref := refused(t, second(f.svc.Issue(ctx, f.request("dave@other.net", 500)))); !strings.Contains(ref.Text, "service's storage") {
		t.Fatalf("total quota: %+v", ref)
	}

	// the files expire: swept, gone (404), and their bytes free again
	f.clock.add(48*time.Hour + time.Second)
	if resp, _ := do(t, "GET", f.url(a.GetURL), nil, nil); resp.StatusCode != http.StatusGone {
		t.Fatalf("GET after expiry, before the sweep: %s, want 410", resp.Status)
	}
	if n, err := f.svc.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("Sweep: %d, %v", n, err)
	}
	if resp, _ := do(t, "GET", f.url(a.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET after the sweep: %s, want 404", resp.Status)
	}
	if _, err := f.svc.opt.Store.Stat(ctx, a.ID); err == nil {
		t.Fatal("expired file still in the store")
	}
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 1000)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n, _ := f.svc.StoredBytes(); n != 0 {
		t.Fatalf("stored bytes after expiry: %d", n)
	}
}

func second[T any](_ T, err error) error { return err }

// XEP-0363 v1.2 purposes set the lifetime of each file.
func TestPurposes(t *testing.T) {
	f := newFixture(t)
	f.svc.opt.FileLifetime = 7 * 24 * time.Hour
	ctx := context.Background()
	now := f.clock.now()
	issue := func(p Purpose, before time.Time) (record, error) {
		r := f.request("alice@example.net", 3)
		r.Purpose, r.ExpireBefore = p, before
		s, err := f.svc.Issue(ctx, r)
		if err != nil {
			return record{}, err
		}
		f.put(t, s, []byte("abc"))
		return f.svc.lookup(context.Background(), s.ID)
	}
	for _, c := range []struct {
		p      Purpose
		before time.Time
		want   time.Time
	}{
		{"", time.Time{}, now.Add(7 * 24 * time.Hour)},
		{PurposeMessage, time.Time{}, now.Add(7 * 24 * time.Hour)},
		{PurposeProfile, time.Time{}, time.Time{}},
		{PurposePermanent, time.Time{}, time.Time{}},
		{PurposeEphemeral, now.Add(time.Hour), now.Add(time.Hour - 2*sweepInterval)},
		{PurposeEphemeral, now.Add(30 * 24 * time.Hour), now.Add(7 * 24 * time.Hour)},
	} {
		rec, err := issue(c.p, c.before)
		if err != nil || !rec.DeleteAfter.Equal(c.want) {
			t.Errorf("purpose %q before %v: delete after %v (%v), want %v", c.p, c.before, rec.DeleteAfter, err, c.want)
		}
	}
	if ref := refused(t, second(issue(PurposeEphemeral, now.Add(time.Minute)))); ref.Kind != refusal.BadRequest {
		t.Errorf("expire-before too soon: %+v", ref)
	}
	if ref := refused(t, second(issue("archive", time.Time{}))); ref.Kind != refusal.Unsupported {
		t.Errorf("unknown purpose: %+v", ref)
	}
}

func TestAccessLists(t *testing.T) {
	f := newFixture(t)
	f.svc.opt.AllowedJIDs = []string{"guest@partner.org"}
	f.svc.opt.DeniedJIDs = []string{"mallory@example.net"}
	f.svc.opt.DeniedDomains = []string{"spam.example.net"}
	f.svc.opt.AllowedDomains = append(f.svc.opt.AllowedDomains, "spam.example.net")
	ctx := context.Background()
	for owner, ok := range map[string]bool{
		"alice@example.net": true, "guest@partner.org": true, "other@partner.org": false,
		"mallory@example.net": false, "bot@spam.example.net": false,
	} {
		_, err := f.svc.Issue(ctx, f.request(owner, 1))
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", owner, err, ok)
		}
		if err != nil && refused(t, err).Kind != refusal.Forbidden {
			t.Errorf("%s: %v, want Forbidden", owner, err)
		}
	}
}

func TestSlotRateLimit(t *testing.T) {
	f := newFixture(t)
	f.svc.limit = newLimiter(2, 3) // 2 a second, 3 at once
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 1)); err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
	}
	ref := refused(t, second(f.svc.Issue(ctx, f.request("alice@example.net", 1))))
	if ref.Kind != refusal.OverQuota || !ref.RetryAt.Equal(f.clock.now().Add(500*time.Millisecond)) || !strings.Contains(ref.Text, "Too many upload requests") {
		t.Fatalf("over the rate: %+v", ref)
	}
	if _, err := f.svc.Issue(ctx, f.request("bob@example.net", 1)); err != nil {
		t.Fatalf("bob is limited by alice: %v", err)
	}
	f.clock.add(500 * time.Millisecond)
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 1)); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
}

// A user's PUTs in progress are capped, and a stalled PUT is cut after the
// idle timeout, leaving nothing behind and the slot usable.
func TestConcurrentAndStalledUploads(t *testing.T) {
	old := putIdleTimeout
	putIdleTimeout = 300 * time.Millisecond
	// restored after the fixture's server has closed (cleanups run last in, first out)
	t.Cleanup(func() { putIdleTimeout = old })
	f := newFixture(t)
	f.svc.opt.MaxUploadsPerUser = 1
	ctx := context.Background()
	a, _ := f.svc.Issue(ctx, f.request("alice@example.net", 10))
	b, _ := f.svc.Issue(ctx, f.request("alice@example.net", 10))

	// a stalls after 5 of its 10 bytes
	conn := f.startHalfPut(t, a, 10)
	if resp, _ := do(t, "PUT", f.url(b.PutURL), bytes.Repeat([]byte("x"), 10), nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second concurrent PUT: %s, want 429", resp.Status)
	}
	// the stalled one is cut: answered 400 and closed by the server (an
	// uncut upload runs into this read deadline instead)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := io.ReadAll(conn)
	if err != nil || !strings.HasPrefix(string(reply), "HTTP/1.1 400 ") {
		t.Fatalf("stalled PUT: answered %q, %v; want a 400 and the connection closed", reply, err)
	}
	f.waitPutEnded(t, a)
	if resp, _ := do(t, "GET", f.url(a.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET of the cut upload: %s", resp.Status)
	}
	f.put(t, a, bytes.Repeat([]byte("y"), 10)) // the slot is still usable
	f.put(t, b, bytes.Repeat([]byte("z"), 10))
}

// A client that stops reading a download is cut off once the download falls
// below the minimum rate.
func TestStalledDownloadIsCut(t *testing.T) {
	oldRate, oldGrace := getMinRate, getGrace
	getMinRate, getGrace = 64<<20, 200*time.Millisecond
	// restored after the fixture's server has closed (cleanups run last in, first out)
	t.Cleanup(func() { getMinRate, getGrace = oldRate, oldGrace })
	f := newFixture(t)
	f.svc.opt.MaxFileSize = 16 << 20
	body := bytes.Repeat([]byte("z"), 8<<20)
	s := f.issue(t, "big.bin", int64(len(body)), "")
	f.put(t, s, body)
	srv, ended := f.serverTellingGetEnds(t)
	resp, err := http.Get(srv.URL + strings.TrimPrefix(s.GetURL, strings.TrimRight(f.svc.opt.PublicURL, "/")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// read nothing until the server has given up on the download (one that
	// is never cut fails here)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled reader still holds its download after 10 s (deadline 325 ms)")
	}
	got, err := io.ReadAll(resp.Body)
	if err == nil || len(got) >= len(body) {
		t.Fatalf("a stalled reader got %d of %d bytes, then %v; want the download cut", len(got), len(body), err)
	}
}
