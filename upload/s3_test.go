package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"mediaslot/refusal"
	"mediaslot/store"
	"mediaslot/store/memstore"
	"mediaslot/store/s3"
	"mediaslot/testserver"
)

var prefixes atomic.Int64

// s3Store is a store on a real S3 server, each test in its own prefix.
func s3Store(t *testing.T, gw *testserver.S3) *s3.Store {
	t.Helper()
	st, _ := s3StorePrefix(t, gw)
	return st
}

// s3StorePrefix is s3Store, also returning the prefix.
func s3StorePrefix(t *testing.T, gw *testserver.S3) (*s3.Store, string) {
	t.Helper()
	prefix := fmt.Sprintf("u%d/", prefixes.Add(1))
	st, err := s3.New(t.Context(), s3.Options{
		Endpoint: gw.Endpoint, Region: gw.Region, Bucket: gw.Bucket,
		AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey,
		PathStyle: true, Prefix: prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, prefix
}

// presigning is a store that clients upload to directly.
type presigning interface {
	store.Store
	store.Presigner
}

// memFixture is a fixture on the in-memory presigning store, whose URLs
// expire by the fixture's clock.
func memFixture(t *testing.T, dl Download) (*fixture, *memstore.Store) {
	t.Helper()
	return memFixtureOn(t, boltRecords, dl)
}

// memFixtureOn is memFixture with slot records in rb.
func memFixtureOn(t *testing.T, rb recordsBackend, dl Download) (*fixture, *memstore.Store) {
	t.Helper()
	st := memstore.Serve(t)
	f := newFixtureOn(t, rb, st, dl)
	st.SetClock(f.clock.now)
	return f, st
}

// eachPresigner runs test on the in-memory store (a unit test of upload's
// S3-mode logic) and on each S3 server of the harness (integration).
func eachPresigner(t *testing.T, dl Download, test func(t *testing.T, f *fixture, st presigning)) {
	t.Run("memstore", func(t *testing.T) {
		f, st := memFixture(t, dl)
		test(t, f, st)
	})
	t.Run("memstore postgres", func(t *testing.T) {
		f, st := memFixtureOn(t, pgRecords(testserver.StartPostgres(t)), dl)
		test(t, f, st)
	})
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) {
		st := s3Store(t, gw)
		f := newFixtureWith(t, st, dl)
		f.clock.t = time.Now() // presigned URLs are checked against the real clock
		test(t, f, st)
	})
}

// In S3 mode the slot's PUT URL is presigned for the store and carries no
// headers; the GET URL stays on mediaslot's front, which answers HEAD from
// the slot record and redirects GET to a fresh presigned URL.
func TestS3Redirect(t *testing.T) {
	testserver.EachS3(t, testS3Redirect)
}

func testS3Redirect(t *testing.T, gw *testserver.S3) {
	f := newFixtureWith(t, s3Store(t, gw), Download{})
	f.clock.t = time.Now() // presigned URLs are checked against the real clock
	body := bytes.Repeat([]byte("s3 bytes "), 500)
	slot := f.issue(t, "holiday é.jpg", int64(len(body)), "image/jpeg")
	if !strings.HasPrefix(slot.PutURL, gw.Endpoint+"/") || len(slot.PutHeaders) != 0 {
		t.Fatalf("PUT URL %s headers %v: want a presigned URL on %s and no headers", slot.PutURL, slot.PutHeaders, gw.Endpoint)
	}
	if !strings.HasPrefix(slot.GetURL, "https://files.example.net/file/") {
		t.Fatalf("GET URL %s is not on the front", slot.GetURL)
	}
	// before the upload there is nothing to get
	if resp, _ := do(t, "HEAD", f.url(slot.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("HEAD before upload: %s", resp.Status)
	}
	resp, _ := do(t, "PUT", slot.PutURL, body, ctype("image/jpeg"))
	if resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %s", resp.Status)
	}
	resp, got := do(t, "HEAD", f.url(slot.GetURL), nil, nil)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Type") != "image/jpeg" ||
		resp.Header.Get("Etag") != `"`+slot.ID+`"` || len(got) != 0 {
		t.Fatalf("HEAD from the record: %s length %d type %q etag %q", resp.Status, resp.ContentLength, resp.Header.Get("Content-Type"), resp.Header.Get("Etag"))
	}
	resp, got = do(t, "GET", f.url(slot.GetURL), nil, nil) // the client follows the redirect
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET through the redirect: %s, %d bytes", resp.Status, len(got))
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline; filename*=utf-8''holiday%20%C3%A9.jpg") {
		t.Errorf("S3 answer lacks the disposition override: %q", cd)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Get(f.url(slot.GetURL))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusFound || r.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.Header.Get("Location"), gw.Endpoint) {
		t.Fatalf("redirect: %s %v", r.Status, r.Header)
	}
	// a PUT to the front is not how S3 slots are uploaded
	if resp, _ := do(t, "PUT", f.url(strings.Replace(slot.GetURL, "/file/", "/upload/", 1)), body, nil); resp.StatusCode != 404 && resp.StatusCode != 403 && resp.StatusCode != 409 {
		t.Fatalf("PUT to the front in S3 mode: %s", resp.Status)
	}
}

func TestS3ProxyRangeAndPublic(t *testing.T) {
	testserver.EachS3(t, testS3ProxyRangeAndPublic)
}

func testS3ProxyRangeAndPublic(t *testing.T, gw *testserver.S3) {
	st, prefix := s3StorePrefix(t, gw)
	body := bytes.Repeat([]byte("0123456789"), 300)

	proxy := newFixtureWith(t, st, Download{Mode: Proxy})
	proxy.clock.t = time.Now()
	slot := proxy.issue(t, "a.bin", int64(len(body)), "")
	if resp, _ := do(t, "PUT", slot.PutURL, body, nil); resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, got := do(t, "GET", proxy.url(slot.GetURL), nil, map[string]string{"Range": "bytes=1000-"})
	if resp.StatusCode != 206 || !bytes.Equal(got, body[1000:]) || resp.Header.Get("Content-Range") != "bytes 1000-2999/3000" {
		t.Fatalf("proxied Range: %s %q %d bytes", resp.Status, resp.Header.Get("Content-Range"), len(got))
	}

	public := newFixtureWith(t, st, Download{Mode: Public, PublicURL: "https://cdn.example.net/media/"})
	public.clock.t = time.Now()
	slot = public.issue(t, "b.bin", int64(len(body)), "")
	if resp, _ := do(t, "PUT", slot.PutURL, body, nil); resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Get(public.url(slot.GetURL))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	// The object lives under the prefix, and so must the public URL.
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "https://cdn.example.net/media/"+prefix+slot.ID {
		t.Fatalf("public redirect: %s %q, want the object %s%s under the public URL", r.Status, r.Header.Get("Location"), prefix, slot.ID)
	}
	if _, err := gw.Client().HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: &gw.Bucket, Key: aws.String(prefix + slot.ID)}); err != nil {
		t.Fatalf("no object where the public redirect points: %v", err)
	}
}

// A server that reports another type for an object of the right size
// (rclone forgets types when it restarts) has not had a bad upload: the
// signature pinned the type, the size is right. The file is kept and served
// with the slot's type.
func TestS3KeepsUploadOfAnotherReportedType(t *testing.T) {
	eachPresigner(t, Download{}, func(t *testing.T, f *fixture, st presigning) {
		body := []byte("<p>a JPEG, honestly</p>")
		slot := f.issue(t, "a.jpg", int64(len(body)), "image/jpeg")
		// The object as such a server reports it: presigned without a type,
		// stored with another.
		u, _, err := st.PresignPut(t.Context(), slot.ID, int64(len(body)), "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := do(t, "PUT", u, body, ctype("text/html")); resp.StatusCode != 200 {
			t.Fatalf("PUT: %s", resp.Status)
		}
		resp, _ := do(t, "HEAD", f.url(slot.GetURL), nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("HEAD: %s %q, want 200 image/jpeg", resp.Status, resp.Header.Get("Content-Type"))
		}
		resp, got := do(t, "GET", f.url(slot.GetURL), nil, nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("GET: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), got)
		}
	})
}

// After an upload is confirmed, PUTs to its presigned URL (valid until it
// expires; some clients print it) must not change what the stable URL
// serves, in any download mode.
func TestS3RewriteAfterConfirm(t *testing.T) {
	for _, mode := range []DownloadMode{Redirect, Proxy} {
		t.Run(string(mode), func(t *testing.T) {
			eachPresigner(t, Download{Mode: mode}, func(t *testing.T, f *fixture, _ presigning) {
				good := bytes.Repeat([]byte("good "), 100)
				slot := f.issue(t, "a.bin", int64(len(good)), "application/octet-stream")
				put := func(b []byte) {
					t.Helper()
					if resp, _ := do(t, "PUT", slot.PutURL, b, ctype("application/octet-stream")); resp.StatusCode != 200 {
						t.Fatalf("PUT: %s", resp.Status)
					}
				}
				put(good)
				if resp, _ := do(t, "HEAD", f.url(slot.GetURL), nil, nil); resp.StatusCode != 200 {
					t.Fatalf("HEAD: %s", resp.Status)
				}
				put(bytes.Repeat([]byte("evil "), 100))
				put(bytes.Repeat([]byte("EVIL "), 100))
				resp, got := do(t, "GET", f.url(slot.GetURL), nil, nil)
				if resp.StatusCode != 200 || !bytes.Equal(got, good) {
					t.Fatalf("GET after two more PUTs: %s %.20q…", resp.Status, got)
				}
			})
		})
	}
}

// Public mode serves from the bucket's origin, where mediaslot cannot add
// its headers: the operator is told what that means.
func TestS3PublicWarns(t *testing.T) {
	st := memstore.New("")
	f := &fixture{}
	boltRecords.open(t, f, true)
	for _, mode := range []DownloadMode{Redirect, Public} {
		var log bytes.Buffer
		if _, err := New(Options{Records: f.reopen(t), Store: st, Download: Download{Mode: mode, PublicURL: "https://cdn.example.net"},
			Logger: slog.New(slog.NewTextHandler(&log, nil))}); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(log.String(), "level=WARN") && strings.Contains(log.String(), "Content-Disposition: attachment")
		if warned != (mode == Public) {
			t.Errorf("%s: warned %v:\n%s", mode, warned, log.String())
		}
	}
}

// A wrong object under a slot's key (a truncated upload) is deleted, not
// served; a slot never uploaded to is forgotten after its window.
func TestS3ConfirmAndSweep(t *testing.T) {
	eachPresigner(t, Download{}, testS3ConfirmAndSweep)
}

func testS3ConfirmAndSweep(t *testing.T, f *fixture, st presigning) {
	ctx := context.Background()

	trunc := f.issue(t, "t.bin", 100, "")
	if err := st.Put(ctx, trunc.ID, strings.NewReader("short"), 5); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "HEAD", f.url(trunc.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("HEAD of a truncated upload: %s", resp.Status)
	}
	if _, err := st.Stat(ctx, trunc.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("truncated object not deleted: %v", err)
	}

	never := f.issue(t, "n.bin", 10, "")
	done := f.issue(t, "d.bin", 3, "")
	if resp, _ := do(t, "PUT", done.PutURL, []byte("abc"), nil); resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	f.clock.add(5*time.Minute + sweepGrace + time.Second)
	n, err := f.svc.Sweep(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Sweep settled %d slots (%v), want 3", n, err)
	}
	for _, id := range []string{never.ID, trunc.ID} {
		if _, err := f.svc.lookup(context.Background(), id); !errors.Is(err, errNoSlot) {
			t.Errorf("abandoned slot %s still recorded: %v", id, err)
		}
	}
	// the upload nobody downloaded yet was confirmed by the sweep
	if rec, err := f.svc.lookup(context.Background(), done.ID); err != nil || !rec.Complete {
		t.Fatalf("completed upload: %+v %v", rec, err)
	}
}

// With the store unreachable, slot requests are refused at once with a
// clear reason instead of URLs that would fail, and taken again once a
// probe finds it back.
func TestS3DownRefusesSlots(t *testing.T) {
	f, st := memFixture(t, Download{})
	st.SetCheckErr(s3.ErrUnreachable)
	f.svc.checkStore(context.Background())
	_, err := f.svc.Issue(context.Background(), f.request("alice@example.net", 1))
	var ref *refusal.Error
	if !errors.As(err, &ref) || ref.Kind != refusal.Unavailable || !strings.Contains(ref.Text, "unavailable") {
		t.Fatalf("Issue with the store down: %v", err)
	}
	st.SetCheckErr(nil)
	f.svc.checkStore(context.Background())
	if _, err := f.svc.Issue(context.Background(), f.request("alice@example.net", 1)); err != nil {
		t.Fatalf("Issue with the store back: %v", err)
	}
}

// Direct (S3) uploads are not seen to start, so a slot holds its size
// until the upload is confirmed or the sweeper settles the slot, not only
// until its window closes: an upload may still arrive just after.
func TestS3QuotaHolds(t *testing.T) { forEachRecords(t, testS3QuotaHolds) }

func testS3QuotaHolds(t *testing.T, rb recordsBackend) {
	f, _ := memFixtureOn(t, rb, Download{})
	f.svc.opt.Quota = Quota{DailyBytes: 1000}
	ctx := context.Background()
	s, err := f.svc.Issue(ctx, f.request("alice@example.net", 600))
	if err != nil {
		t.Fatal(err)
	}
	never, err := f.svc.Issue(ctx, f.request("alice@example.net", 300))
	if err != nil {
		t.Fatal(err)
	}
	// The upload arrives in its window, unseen by mediaslot.
	if resp, _ := do(t, "PUT", s.PutURL, make([]byte, 600), nil); resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %s", resp.Status)
	}
	f.clock.add(f.svc.opt.SlotLifetime)
	ref := refused(t, second(f.svc.Issue(ctx, f.request("alice@example.net", 200))))
	if want := f.clock.now().Add(f.svc.opt.SlotLifetime + sweepGrace + sweepInterval); !ref.RetryAt.Equal(want) {
		t.Fatalf("refusal %+v, want a retry at %v", ref, want)
	}
	if resp, _ := do(t, "HEAD", f.url(s.GetURL), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("HEAD: %s", resp.Status)
	}
	// confirmed: 600 used, 300 held
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 100)); err != nil {
		t.Fatalf("the confirmed upload counts twice: %v", err)
	}
	f.clock.add(sweepGrace + time.Second)
	if _, err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.lookup(context.Background(), never.ID); !errors.Is(err, errNoSlot) {
		t.Fatalf("abandoned slot: %v", err)
	}
	if _, err := f.svc.Issue(ctx, f.request("alice@example.net", 300)); err != nil {
		t.Fatalf("after the sweep settled the abandoned slot: %v", err)
	}
}
