package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mediaslot/store"
	"mediaslot/store/storetest"
	"mediaslot/testserver"
)

var prefixes atomic.Int64

// newStore returns a Store on gw's bucket under a prefix of its own, so
// that tests sharing one gateway cannot see each other's objects.
func newStore(t *testing.T, gw *testserver.S3) *Store {
	t.Helper()
	return mustNew(t, Options{
		Endpoint:        gw.Endpoint,
		Region:          gw.Region,
		Bucket:          gw.Bucket,
		AccessKeyID:     gw.AccessKey,
		SecretAccessKey: gw.SecretKey,
		PathStyle:       true,
		Prefix:          fmt.Sprintf("t%d/", prefixes.Add(1)),
	})
}

func mustNew(t *testing.T, opt Options) *Store {
	t.Helper()
	s, err := New(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) {
		storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, gw) })
	})
}

func TestNewRejectsIncompleteOptions(t *testing.T) {
	for _, opt := range []Options{
		{Region: "us-east-1"},
		{Region: "us-east-1", Bucket: "b", AccessKeyID: "ak"},
		{Region: "us-east-1", Bucket: "b", SecretAccessKey: "sk"},
	} {
		if _, err := New(t.Context(), opt); err == nil {
			t.Errorf("New(%+v) succeeded", opt)
		}
	}
}

// Uploads that end early, run long, fail or are cancelled must leave no
// object behind, also with bodies large enough to be streamed in many
// writes: versitygw stores a truncated object when a client closes the
// connection normally in the middle of a body. The check waits until
// versitygw has finished writing uploads (no temporary file left in the
// bucket's .sgwtmp: removed, or committed as an object), so that a
// truncated object it commits after the client hung up is there to be
// found.
func TestAbortedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	gw := testserver.VersityGW(t)
	s := newStore(t, gw)
	const size = 1 << 20
	body := bytes.Repeat([]byte{'m'}, size+1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cases := []struct {
		name string
		r    io.Reader
		ctx  context.Context
		want error
	}{
		{"short", bytes.NewReader(body[:size-1]), t.Context(), store.ErrSize},
		{"long", bytes.NewReader(body), t.Context(), store.ErrSize},
		{"failing", io.MultiReader(bytes.NewReader(body[:size/2]), failing{}), t.Context(), errFailing},
		{"cancelled", io.MultiReader(bytes.NewReader(body[:size/2]), cancelling{cancel, gw.LogPath()}, bytes.NewReader(body[size/2:size])), ctx, context.Canceled},
	}
	for _, tc := range cases {
		if err := s.Put(tc.ctx, tc.name, tc.r, size); !errors.Is(err, tc.want) {
			t.Errorf("%s: Put = %v, want %v", tc.name, err, tc.want)
		}
		testserver.WaitFor(t, 10*time.Second, "versitygw to finish writing uploads", func() bool {
			entries, err := os.ReadDir(filepath.Join(gw.Dir, gw.Bucket, ".sgwtmp"))
			return len(entries) == 0 && (err == nil || errors.Is(err, fs.ErrNotExist))
		})
		if _, err := s.Stat(t.Context(), tc.name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: object left behind: Stat = %v", tc.name, err)
		}
	}
}

var errFailing = errors.New("source failed")

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errFailing }

// cancelling is a source that cancels its upload and delivers the rest of
// the body once versitygw has seen the connection reset (a client's bytes
// arriving after the transport gave the request up; the test's assertion
// is on what is stored). The transport resets the connection on its own
// goroutine when the context ends, while this Read holds the body.
type cancelling struct {
	cancel context.CancelFunc
	log    string // versitygw's
}

func (c cancelling) Read([]byte) (int, error) {
	resets := func() int {
		b, _ := os.ReadFile(c.log)
		return bytes.Count(b, []byte("connection reset by peer"))
	}
	before := resets()
	c.cancel()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(10 * time.Second); resets() == before && time.Now().Before(deadline); {
		<-poll.C
	}
	return 0, io.EOF
}

// Seeks must not open streams: http.ServeContent seeks to the end and back
// before it reads.
func TestSeekOpensNoStream(t *testing.T) {
	t.Parallel()
	gw := testserver.VersityGW(t)
	s := newStore(t, gw)
	if err := s.Put(t.Context(), "k", strings.NewReader("0123456789"), 10); err != nil {
		t.Fatal(err)
	}
	f, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := f.(*object)
	if n, err := f.Seek(0, io.SeekEnd); n != 10 || err != nil {
		t.Fatalf("Seek to end = %d, %v", n, err)
	}
	if _, err := f.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if o.body != nil {
		t.Fatal("Seek opened a stream")
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(f, b); err != nil || string(b) != "456" {
		t.Fatalf("read %q, %v", b, err)
	}
	stream := o.body
	if _, err := f.Seek(0, io.SeekCurrent); err != nil || o.body != stream {
		t.Fatal("a Seek that does not move closed the stream")
	}
	if n, err := f.Read(make([]byte, 10)); n != 3 || (err != nil && err != io.EOF) {
		t.Fatalf("read rest: %d, %v", n, err)
	}
	if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read at end: %d, %v", n, err)
	}
}

func TestPresignPut(t *testing.T) {
	t.Parallel()
	testserver.EachS3(t, testPresignPut)
}

func testPresignPut(t *testing.T, gw *testserver.S3) {
	s := newStore(t, gw)
	ctx := t.Context()
	body := []byte("an encrypted picture")
	const ctype = "image/jpeg"
	presign := func(t *testing.T, key, contentType string, ttl time.Duration) (string, http.Header) {
		t.Helper()
		u, h, err := s.PresignPut(ctx, key, int64(len(body)), contentType, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return u, h
	}

	t.Run("SignsOnlyLengthTypeHost", func(t *testing.T) {
		u, h := presign(t, "signed", ctype, time.Minute)
		q := mustParse(t, u).Query()
		if got := q.Get("X-Amz-SignedHeaders"); got != "content-length;content-type;host" {
			t.Errorf("signed headers %q", got)
		}
		for k := range q {
			if lk := strings.ToLower(k); strings.Contains(lk, "checksum") || strings.Contains(lk, "acl") {
				t.Errorf("URL carries %s: %s", k, u)
			}
		}
		if len(h) != 1 || h.Get("Content-Type") != ctype {
			t.Errorf("headers to send: %v", h)
		}
		u, h = presign(t, "untyped", "", time.Minute)
		if got := mustParse(t, u).Query().Get("X-Amz-SignedHeaders"); got != "content-length;host" {
			t.Errorf("signed headers without a type: %q", got)
		}
		if len(h) != 0 {
			t.Errorf("headers to send without a type: %v", h)
		}
	})

	t.Run("Accepted", func(t *testing.T) {
		u, h := presign(t, "good", ctype, time.Minute)
		if code := do(t, http.MethodPut, u, h.Get("Content-Type"), body); code != http.StatusOK {
			t.Fatalf("PUT: %d", code)
		}
		if info, err := s.Seal(ctx, "good", int64(len(body))); err != nil || info.ContentType != ctype {
			t.Fatalf("Seal = %+v, %v", info, err)
		}
		if got := storetest.ReadAll(t, s, "good"); !bytes.Equal(got, body) {
			t.Fatalf("stored %q", got)
		}
		u, _ = presign(t, "untyped", "", time.Minute)
		if code := do(t, http.MethodPut, u, "", body); code != http.StatusOK {
			t.Fatalf("PUT without a type: %d", code)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		tamper := func(u string) string {
			pu := mustParse(t, u)
			q := pu.Query()
			sig := []byte(q.Get("X-Amz-Signature"))
			sig[0] ^= 1 // '0'..'9','a'..'f' stay printable
			q.Set("X-Amz-Signature", string(sig))
			pu.RawQuery = q.Encode()
			return pu.String()
		}
		rekey := func(u string) string { return strings.Replace(u, "/rekeyed?", "/other?", 1) }
		get := func(key string) string {
			u, err := s.PresignGet(ctx, key, time.Minute, "", "")
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		// signed a minute ago for a second, by a store whose clock is set
		// back: expired when it arrives, with no wait
		past := newStore(t, gw)
		if past.fast == nil {
			t.Fatal("no presigner whose clock the test can set")
		}
		past.fast.now = func() time.Time { return time.Now().Add(-time.Minute) }
		expired, _, err := past.PresignPut(ctx, "expired", int64(len(body)), ctype, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			key, url, ctype string
			body            []byte
		}{
			{"longer", "", ctype, append(bytes.Clone(body), '!')},
			{"shorter", "", ctype, body[1:]},
			{"wrongtype", "", "text/html", body},
			{"notype", "", "", body},
			{"tampered", tamper(presignURL(t, s, "tampered", len(body), ctype)), ctype, body},
			{"rekeyed", rekey(presignURL(t, s, "rekeyed", len(body), ctype)), ctype, body},
			{"getforput", get("getforput"), ctype, body},
			{"expired", expired, ctype, body},
		}
		for _, tc := range cases {
			u := tc.url
			if u == "" {
				u = presignURL(t, s, tc.key, len(body), ctype)
			}
			if code := do(t, http.MethodPut, u, tc.ctype, tc.body); code != http.StatusForbidden && code != http.StatusBadRequest {
				t.Errorf("%s: PUT answered %d, want 403 or 400", tc.key, code)
			}
			for _, key := range []string{tc.key, "other"} {
				if _, err := s.Seal(ctx, key, int64(len(body))); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: object %s exists after a refused PUT: %v", tc.key, key, err)
				}
			}
		}
	})
}

func TestPresignGet(t *testing.T) {
	t.Parallel()
	testserver.EachS3(t, testPresignGet)
}

func testPresignGet(t *testing.T, gw *testserver.S3) {
	s := newStore(t, gw)
	if err := s.Put(t.Context(), "k", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(t.Context(), "k", time.Minute, "text/plain", `inline; filename="a.txt"`)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "hello" {
		t.Fatalf("GET: %d %q", resp.StatusCode, b)
	}
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "text/plain" || cd != `inline; filename="a.txt"` {
		t.Errorf("response overrides not applied: Content-Type %q, Content-Disposition %q", ct, cd)
	}
	// Why mediaslot never hands these out as GET URLs: clients HEAD first.
	if code := do(t, http.MethodHead, u, "", nil); code != http.StatusForbidden {
		t.Errorf("HEAD with a presigned GET URL answered %d, want 403", code)
	}
	if _, err := s.PresignGet(t.Context(), "../k", time.Minute, "", ""); !errors.Is(err, store.ErrKey) {
		t.Errorf("PresignGet of an invalid key: %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	testserver.EachS3(t, testCheck)
}

func testCheck(t *testing.T, gw *testserver.S3) {
	opt := Options{
		Endpoint: gw.Endpoint, Region: gw.Region, Bucket: gw.Bucket,
		AccessKeyID: gw.AccessKey, SecretAccessKey: gw.SecretKey, PathStyle: true,
	}
	if err := mustNew(t, opt).Check(t.Context()); err != nil {
		t.Fatalf("Check of a good configuration: %v", err)
	}
	closed := opt
	closed.Endpoint = "http://" + closedPort(t)
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want error
		says string
	}{
		{"missing bucket", func(o *Options) { o.Bucket = "nosuchbucket" }, ErrNoBucket, `no bucket "nosuchbucket"`},
		{"unknown access key", func(o *Options) { o.AccessKeyID = "nosuchkey" }, ErrCredentials, `does not know access key "nosuchkey"`},
		{"wrong secret", func(o *Options) { o.SecretAccessKey = "wrongsecret" }, ErrCredentials, "secret key is wrong"},
		{"closed port", func(o *Options) { *o = closed }, ErrUnreachable, "connection refused"},
		{"wrong region", func(o *Options) { o.Region = "eu-central-1" }, ErrRegion, `set store.s3.region to "us-east-1"`},
	} {
		if tc.want == ErrRegion && !gw.ChecksRegion {
			continue
		}
		o := opt
		tc.edit(&o)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		start := time.Now()
		err := mustNew(t, o).Check(ctx)
		cancel()
		t.Logf("%s: %v (%v)", tc.name, err, time.Since(start).Round(time.Millisecond))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Check = %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
		for _, other := range []error{ErrNoBucket, ErrCredentials, ErrUnreachable, ErrRegion} {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("%s: Check = %v, also %v", tc.name, err, other)
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: Check took %v", tc.name, d)
		}
	}
}

// An endpoint that accepts connections and never answers is reported when
// the caller's deadline passes.
func TestCheckSilentEndpoint(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := mustNew(t, Options{Endpoint: "http://" + l.Addr().String(), Region: "us-east-1", Bucket: "b", AccessKeyID: "ak", SecretAccessKey: "sk"})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	err = s.Check(ctx)
	if !errors.Is(err, ErrUnreachable) || time.Since(start) > 3*time.Second {
		t.Fatalf("Check = %v after %v, want ErrUnreachable after 1 s", err, time.Since(start))
	}
	t.Log(err)
}

// With no access key in the Options, the SDK's default chain supplies one.
func TestDefaultCredentialChain(t *testing.T) {
	gw := testserver.VersityGW(t)
	t.Setenv("AWS_ACCESS_KEY_ID", gw.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", gw.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	s := mustNew(t, Options{Endpoint: gw.Endpoint, Region: gw.Region, Bucket: gw.Bucket, PathStyle: true})
	if err := s.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func presignURL(t *testing.T, s *Store, key string, size int, contentType string) string {
	t.Helper()
	u, _, err := s.PresignPut(t.Context(), key, int64(size), contentType, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// do sends a request as an XMPP client would and returns the status.
func do(t *testing.T, method, u, contentType string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func mustParse(t *testing.T, u string) *url.URL {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu
}

// The bucket CORS rule lets a browser preflight a presigned PUT.
func TestSetCORS(t *testing.T) {
	t.Parallel()
	gw := testserver.VersityGW(t)
	s := newStore(t, gw)
	if err := s.SetCORS(t.Context(), []string{"https://web.example.net"}); err != nil {
		t.Fatal(err)
	}
	u := presignURL(t, s, "cors", 5, "text/plain")
	req, _ := http.NewRequest(http.MethodOptions, u, nil)
	req.Header.Set("Origin", "https://web.example.net")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != "https://web.example.net" {
		t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
	}
}
