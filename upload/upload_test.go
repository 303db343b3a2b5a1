package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/refusal"
	"mediaslot/store"
	"mediaslot/store/disk"
	"mediaslot/upload/slotstore"
)

type fixture struct {
	svc   *Service
	srv   *httptest.Server
	clock *clock
	// reopen returns a new slot store on the fixture's data, as after a
	// restart of mediaslot.
	reopen func(t *testing.T) slotstore.Store
	// db and writer are those of the bbolt slot store; nil on others.
	db     *bolt.DB
	writer *groupcommit.Writer
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)} }
func (f *fixture) url(u string) string {
	return strings.Replace(u, "https://files.example.net", f.srv.URL, 1)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := disk.New(filepath.Join(t.TempDir(), "files"))
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, st, Download{})
}

// newFixtureWith is a fixture on st with slot records in bbolt.
func newFixtureWith(t *testing.T, st store.Store, dl Download) *fixture {
	t.Helper()
	return newFixtureOn(t, boltRecords, st, dl)
}

// newFixtureOn is a fixture on st with slot records in backend.
func newFixtureOn(t *testing.T, backend recordsBackend, st store.Store, dl Download) *fixture {
	t.Helper()
	f := &fixture{clock: newClock()}
	_, direct := st.(store.Presigner)
	backend.open(t, f, direct)
	c := f.clock
	svc, err := New(Options{
		Download:   dl,
		Policy:     Policy{MaxFileSize: 1 << 20, SlotLifetime: 5 * time.Minute, AllowedDomains: []string{"example.net"}},
		Records:    f.reopen(t),
		Store:      st,
		Key:        []byte("0123456789abcdef0123456789abcdef"),
		PublicURL:  "https://files.example.net/",
		CORSOrigin: []string{"*"},
		Now:        c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	f.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) issue(t *testing.T, name string, size int64, ctype string) Slot {
	t.Helper()
	s, err := f.svc.Issue(context.Background(), Request{Owner: "alice@example.net", Domain: "example.net", Filename: name, Size: size, ContentType: ctype})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(t *testing.T, method, u string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func ctype(v string) map[string]string { return map[string]string{"Content-Type": v} }

func TestPutGetHeadRange(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("0123456789"), 1000)
	slot := f.issue(t, "photo été #1.jpg", int64(len(body)), "image/jpeg")

	if want := "https://files.example.net/file/" + slot.ID + "/photo%20%C3%A9t%C3%A9%20%231.jpg"; slot.GetURL != want {
		t.Fatalf("GET URL %s, want %s (unicode escaped once)", slot.GetURL, want)
	}
	if len(slot.PutHeaders) != 0 {
		t.Fatalf("disk slots need no headers, got %v", slot.PutHeaders)
	}
	resp, _ := do(t, "PUT", f.url(slot.PutURL), body, ctype("image/jpeg"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, got := do(t, "GET", f.url(slot.GetURL), nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(got))
	}
	for k, want := range map[string]string{
		"Content-Type":           "image/jpeg",
		"X-Content-Type-Options": "nosniff",
		"Content-Disposition":    "inline; filename*=utf-8''photo%20%C3%A9t%C3%A9%20#1.jpg",
		"Etag":                   `"` + slot.ID + `"`,
		"Accept-Ranges":          "bytes",
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("GET %s = %q, want %q", k, v, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	resp, got = do(t, "HEAD", f.url(slot.GetURL), nil, map[string]string{"Accept-Encoding": "identity"})
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) || len(got) != 0 {
		t.Fatalf("HEAD: %s length %d body %d", resp.Status, resp.ContentLength, len(got))
	}
	resp, got = do(t, "GET", f.url(slot.GetURL), nil, map[string]string{"Range": "bytes=4000-"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[4000:]) || resp.Header.Get("Content-Range") != "bytes 4000-9999/10000" {
		t.Fatalf("Range: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Range"), len(got))
	}
	resp, _ = do(t, "GET", f.url(slot.GetURL), nil, map[string]string{"If-None-Match": `"` + slot.ID + `"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %s", resp.Status)
	}
}

func TestAttachmentForActiveContent(t *testing.T) {
	f := newFixture(t)
	for _, ct := range []string{"text/html", "image/svg+xml", "application/pdf"} {
		body := []byte("<script>alert(1)</script>")
		slot := f.issue(t, "x", int64(len(body)), ct)
		do(t, "PUT", f.url(slot.PutURL), body, ctype(ct))
		resp, _ := do(t, "GET", f.url(slot.GetURL), nil, nil)
		if d := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(d, "attachment") {
			t.Errorf("%s served with Content-Disposition %q", ct, d)
		}
	}
}

func TestPutRejections(t *testing.T) {
	f := newFixture(t)
	body := []byte("hello world")
	n := int64(len(body))
	tamper := func(u, key, val string) string {
		p, _ := url.Parse(u)
		q := p.Query()
		q.Set(key, val)
		p.RawQuery = q.Encode()
		return p.String()
	}
	cases := []struct {
		name   string
		url    func(Slot) string
		body   []byte
		hdr    map[string]string
		status int
	}{
		{"longer", func(s Slot) string { return s.PutURL }, append(body, '!'), ctype("text/plain"), 413},
		{"shorter", func(s Slot) string { return s.PutURL }, body[:5], ctype("text/plain"), 400},
		{"wrong type", func(s Slot) string { return s.PutURL }, body, ctype("text/html"), 415},
		{"missing type", func(s Slot) string { return s.PutURL }, body, nil, 415},
		{"tampered token", func(s Slot) string { return tamper(s.PutURL, "t", "AAAAAAAAAAAAAAAAAAAAAA") }, body, ctype("text/plain"), 403},
		{"no token", func(s Slot) string { return strings.Split(s.PutURL, "?")[0] }, body, ctype("text/plain"), 403},
		{"raised expiry", func(s Slot) string { return tamper(s.PutURL, "e", "9999999999") }, body, ctype("text/plain"), 403},
		{"unknown id", func(s Slot) string { return strings.Replace(s.PutURL, s.ID, strings.Repeat("0", 32), 1) }, body, ctype("text/plain"), 404},
		{"bad id", func(s Slot) string { return strings.Replace(s.PutURL, s.ID, "..", 1) }, body, ctype("text/plain"), 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slot := f.issue(t, "a.txt", n, "text/plain")
			resp, _ := do(t, "PUT", f.url(c.url(slot)), c.body, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("status %s, want %d", resp.Status, c.status)
			}
			// nothing was stored: the slot is still usable
			resp, _ = do(t, "GET", f.url(slot.GetURL), nil, nil)
			if resp.StatusCode != 404 {
				t.Fatalf("GET after refused PUT: %s", resp.Status)
			}
			resp, _ = do(t, "PUT", f.url(slot.PutURL), body, ctype("text/plain; charset=utf-8"))
			if resp.StatusCode != 201 {
				t.Fatalf("good PUT after refused one: %s", resp.Status)
			}
		})
	}
}

// A token from one slot does not open another (ids are in the signed facts).
func TestTokenBoundToSlot(t *testing.T) {
	f := newFixture(t)
	a := f.issue(t, "a", 5, "text/plain")
	b := f.issue(t, "a", 5, "text/plain")
	u := strings.Replace(a.PutURL, a.ID, b.ID, 1)
	if resp, _ := do(t, "PUT", f.url(u), []byte("hello"), ctype("text/plain")); resp.StatusCode != 403 {
		t.Fatalf("cross-slot token: %s", resp.Status)
	}
}

func TestOneTimeAndExpiry(t *testing.T) {
	f := newFixture(t)
	s := f.issue(t, "a.bin", 3, "")
	if resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("abc"), nil); resp.StatusCode != 201 {
		t.Fatalf("first PUT: %s", resp.Status)
	}
	if resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("xyz"), nil); resp.StatusCode != 409 {
		t.Fatalf("second PUT: %s", resp.Status)
	}
	if resp, b := do(t, "GET", f.url(s.GetURL), nil, nil); string(b) != "abc" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("second PUT changed the file or type: %q %q", b, resp.Header.Get("Content-Type"))
	}
	late := f.issue(t, "late.bin", 3, "")
	f.clock.add(5*time.Minute + time.Second)
	if resp, _ := do(t, "PUT", f.url(late.PutURL), []byte("abc"), nil); resp.StatusCode != 403 {
		t.Fatalf("expired PUT: %s", resp.Status)
	}
}

func TestChunkedPutNeedsLength(t *testing.T) {
	f := newFixture(t)
	s := f.issue(t, "a.txt", 5, "text/plain")
	req, _ := http.NewRequest("PUT", f.url(s.PutURL), io.MultiReader(strings.NewReader("hello"))) // unknown length: chunked
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusLengthRequired {
		t.Fatalf("chunked PUT: %s", resp.Status)
	}
}

func TestCORS(t *testing.T) {
	f := newFixture(t)
	s := f.issue(t, "a.txt", 5, "text/plain")
	resp, _ := do(t, "OPTIONS", f.url(s.PutURL), nil, map[string]string{
		"Origin": "https://web.example.net", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type",
	})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
	}
	resp, _ = do(t, "PUT", f.url(s.PutURL), []byte("hello"), map[string]string{"Content-Type": "text/plain", "Origin": "https://web.example.net"})
	if resp.StatusCode != 201 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("PUT with Origin: %s %v", resp.Status, resp.Header)
	}
	resp, _ = do(t, "GET", f.url(s.GetURL), nil, map[string]string{"Origin": "https://web.example.net"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Content-Length") {
		t.Fatalf("GET with Origin: %v", resp.Header)
	}
}

func TestConcurrentPutsOneWins(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("x"), 256<<10)
	s := f.issue(t, "big", int64(len(body)), "")
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := do(t, "PUT", f.url(s.PutURL), body, nil)
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 201:
			won++
		case 409:
		default:
			t.Errorf("status %d", c)
		}
	}
	_, got := do(t, "GET", f.url(s.GetURL), nil, nil)
	if won != 1 || sha256.Sum256(got) != sha256.Sum256(body) {
		t.Fatalf("%d PUTs won, GET %d bytes", won, len(got))
	}
}

func TestUnknownFile404(t *testing.T) {
	f := newFixture(t)
	s := f.issue(t, "a", 1, "")
	for _, p := range []string{"/file/" + s.ID + "/a", "/file/zz/a", "/file/" + strings.Repeat("a", 32) + "/a", "/nothing"} {
		if resp, _ := do(t, "GET", f.srv.URL+p, nil, nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}
}

func TestPolicy(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		req    Request
		reason refusal.Kind
	}{
		{Request{Domain: "evil.org", Filename: "a", Size: 1}, refusal.Forbidden},
		{Request{Domain: "example.net", Filename: "", Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a/b", Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "..", Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a\x00b", Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a\nb", Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: strings.Repeat("é", 128), Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "\xff.jpg", Size: 1}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a", Size: 0}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a", Size: -5}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a", Size: 1, ContentType: "not a type"}, refusal.BadRequest},
		{Request{Domain: "example.net", Filename: "a", Size: 1<<20 + 1}, refusal.TooLarge},
	}
	for _, c := range cases {
		_, err := f.svc.Issue(context.Background(), c.req)
		var ref *refusal.Error
		if !errors.As(err, &ref) || ref.Kind != c.reason || ref.Text == "" {
			t.Errorf("%+v: got %v, want reason %d", c.req, err, c.reason)
			continue
		}
		if c.reason == refusal.TooLarge && ref.MaxSize != 1<<20 {
			t.Errorf("TooLarge without MaxSize: %+v", ref)
		}
	}
	if _, err := f.svc.Issue(context.Background(), Request{Domain: "EXAMPLE.net", Filename: "a..b c.txt", Size: 1 << 20}); err != nil {
		t.Errorf("valid request refused: %v", err)
	}
}

// Characters that change how a name looks without being seen are refused
// at slot time with a text naming the character: U+202E shows
// "photo\u202egpj.exe" as "photoexe.jpg". Right-to-left scripts and the
// joiners that scripts and emoji need still pass.
func TestFilenameInvisibleCharacters(t *testing.T) {
	f := newFixture(t)
	for _, c := range []rune{0x202e, 0x202a, 0x202b, 0x202c, 0x202d, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c,
		0x200b, 0x2060, 0xfeff, 0x00ad, 0x2028, 0x2029, 0xe0001} {
		name := "photo" + string(c) + "gpj.exe"
		ref := refused(t, second(f.svc.Issue(context.Background(), f.request("alice@example.net", 1).withName(name))))
		if want := fmt.Sprintf("U+%04X", c); ref.Kind != refusal.BadRequest || !strings.Contains(ref.Text, want) {
			t.Errorf("%q: %+v, want BadRequest naming %s", name, ref, want)
		}
	}
	for _, name := range []string{"photo été.jpg", "صورة.jpg", "תמונה.png", "\U0001F468\u200d\U0001F469\u200d\U0001F467.jpg", "می\u200cخواهم.txt"} {
		if _, err := f.svc.Issue(context.Background(), f.request("alice@example.net", 1).withName(name)); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
}

// TestSlotAnsweredBeforeItsCommit holds the writer inside a transaction:
// Issue must still answer (it does not wait for the record's commit), the
// PUT that overtakes the commit must succeed without waiting for it, and
// the file must be there once the commit is through.
func TestSlotAnsweredBeforeItsCommit(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	if err := f.writer.Submit(context.Background(), func(*bolt.Tx) error { <-release; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	issued := make(chan Slot, 1)
	go func() { issued <- f.issue(t, "a.txt", 5, "text/plain") }()
	var s Slot
	select {
	case s = <-issued:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Issue waited for the commit of its record")
	}
	if err := f.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("slots")).Get([]byte(s.ID)) != nil {
			t.Error("record committed while the writer was held: the test proves nothing")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The PUT reads the record from memory; its completion then waits in
	// line behind the slot's record, after the held transaction.
	put := make(chan int, 1)
	go func() {
		resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("hello"), ctype("text/plain"))
		put <- resp.StatusCode
	}()
	// The bytes reach the store before the completion is recorded: once
	// they are there, the PUT has found its slot while the writer was held.
	for i := 0; ; i++ {
		if _, err := f.svc.opt.Store.Stat(context.Background(), s.ID); err == nil {
			break
		}
		select {
		case code := <-put:
			close(release)
			t.Fatalf("PUT while the slot's record was not committed: %d", code)
		case <-time.After(10 * time.Millisecond):
		}
		if i == 1000 {
			close(release)
			t.Fatal("the upload did not reach the store")
		}
	}
	close(release)
	if code := <-put; code != http.StatusCreated {
		t.Fatalf("PUT racing the slot's commit: %d, want 201", code)
	}
	if resp, body := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
}

// TestSlotIDsSortByIssue: ids begin with the time of issue, so records are
// appended to the B+tree (see the package doc), and stay unique within one
// millisecond.
func TestSlotIDsSortByIssue(t *testing.T) {
	f := newFixture(t)
	var prev string
	seen := map[string]bool{}
	for i := range 200 {
		if i%10 == 0 {
			f.clock.add(time.Millisecond)
		}
		s := f.issue(t, "a.txt", 5, "text/plain")
		if !validID(s.ID) || seen[s.ID] {
			t.Fatalf("id %q invalid or repeated", s.ID)
		}
		seen[s.ID] = true
		if i%10 == 0 && s.ID <= prev {
			t.Fatalf("id %q issued a millisecond after %q sorts before it", s.ID, prev)
		}
		prev = s.ID
	}
}

// sync waits until the slot records f's Service wrote are durable (bbolt
// commits slot records after answering).
func (f *fixture) sync(t *testing.T) {
	t.Helper()
	if f.writer == nil {
		return
	}
	if err := f.writer.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// restart returns a new Service on f's slot records and store, as after
// a restart of mediaslot: nothing of f.svc's memory is kept.
func (f *fixture) restart(t *testing.T) *fixture {
	t.Helper()
	opt := f.svc.opt
	opt.Records = f.reopen(t)
	svc, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	g := *f
	g.svc = svc
	g.srv = httptest.NewServer(svc.Handler())
	t.Cleanup(g.srv.Close)
	return &g
}
