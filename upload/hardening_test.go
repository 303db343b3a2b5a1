package upload

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRangeBounds: no ranged answer is larger than the file and a few part
// headers. Many ranges or overlapping ones get the whole file (200); a set
// with nothing satisfiable, "bytes=-0" included, gets 416; ordinary single
// and multiple ranges still get 206.
func TestRangeBounds(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("0123456789"), 2000)
	size := len(body)
	s := f.issue(t, "r.bin", int64(size), "")
	f.put(t, s, body)
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		return do(t, "GET", f.url(s.GetURL), nil, map[string]string{"Range": rng})
	}

	var many []string
	for i := range 10000 {
		many = append(many, fmt.Sprintf("%d-%d", 2*i, 2*i))
	}
	for name, rng := range map[string]string{
		"10,000 one-byte ranges": "bytes=" + strings.Join(many, ","),
		"17 ranges":              "bytes=" + strings.Join(many[:16+1], ","),
		"overlapping":            "bytes=0-5000,1000-6000,2000-7000",
		"overlapping suffix":     "bytes=19000-19500,-1000",
	} {
		resp, got := get(rng)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
			t.Errorf("%s: %s, %d bytes, want 200 with the whole file (%d bytes)", name, resp.Status, len(got), size)
		}
	}

	for _, rng := range []string{"bytes=-0", "bytes=-0,-0", "bytes=20000-", "bytes=-0,30000-40000"} {
		resp, got := get(rng)
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%s: %s %q (%d bytes), want 416 bytes */%d", rng, resp.Status, resp.Header.Get("Content-Range"), len(got), size)
		}
	}

	if resp, got := get("bytes=-0,5-9"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[5:10]) {
		t.Errorf("bytes=-0,5-9: %s %q, want 206 with bytes 5-9", resp.Status, got)
	}
	if resp, got := get("bytes=-5"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[size-5:]) {
		t.Errorf("bytes=-5: %s %q", resp.Status, got)
	}
	resp, got := get("bytes=" + strings.Join(many[:16], ","))
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || len(got) > size {
		t.Errorf("%d ranges: %s %q, %d bytes", 16, resp.Status, resp.Header.Get("Content-Type"), len(got))
	}
}

// TestCORSVaryOrigin: every answer says Vary: Origin, whether the Origin is
// allowed, refused or absent, for "*" and for a list: the CORS headers
// depend on it, so caches must not share the answers between origins.
func TestCORSVaryOrigin(t *testing.T) {
	for _, origins := range [][]string{{"*"}, {"https://web.example.net"}} {
		f := newFixture(t)
		f.svc.opt.CORSOrigin = origins
		s := f.issue(t, "a.txt", 5, "")
		f.put(t, s, []byte("hello"))
		for _, origin := range []string{"https://web.example.net", "https://evil.example.org", ""} {
			hdr := map[string]string{}
			if origin != "" {
				hdr["Origin"] = origin
			}
			for _, req := range []struct{ method, url string }{
				{"GET", s.GetURL}, {"HEAD", s.GetURL}, {"OPTIONS", s.PutURL},
				{"GET", "https://files.example.net/file/0123456789abcdef0123456789abcdef/x"},
			} {
				resp, _ := do(t, req.method, f.url(req.url), nil, hdr)
				if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
					t.Errorf("origins %v, Origin %q, %s %s: %s without Vary: Origin (%v)", origins, origin, req.method, req.url, resp.Status, resp.Header)
				}
			}
		}
	}
}

// sendWithheld sends head (a request that declares a body) and nothing of
// the body, and returns the first final answer and whether a 100 Continue
// came before it. It then waits for the server to close the connection,
// failing if it has not within wait.
func sendWithheld(t *testing.T, addr, head string, wait time.Duration) (status int, continued bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer within %v: %v", wait, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusContinue {
			continued = true
			continue
		}
		status = resp.StatusCode
		break
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the server did not close the connection within %v: %v", wait, err)
	}
	return status, continued
}

// TestEarlyErrorsCloseConnections: a request that declares a body, small
// (under net/http's 256 KiB drain limit) or not, and never sends it gets its
// answer, and its connection is closed within lingerTimeout, for every
// early answer: the PUT's refusals, a GET or an OPTIONS with a body, the
// mux's 404 and 405. A client that waits for 100 Continue gets the final
// status without one. Before, the connection stayed open for ever.
func TestEarlyErrorsCloseConnections(t *testing.T) {
	old := lingerTimeout
	lingerTimeout = 100 * time.Millisecond
	// restored after the fixture's server has closed (cleanups run last in, first out)
	t.Cleanup(func() { lingerTimeout = old })
	f := newFixture(t)
	f.svc.opt.MaxUploadsPerUser = 1
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	path := func(u string) string { return strings.TrimPrefix(f.url(u), f.srv.URL) }

	done := f.issue(t, "done.txt", 5, "")
	f.put(t, done, []byte("hello"))
	typed := f.issue(t, "t.txt", 10, "text/plain")
	short := f.issue(t, "s.txt", 5, "")
	busy, err := f.svc.Issue(context.Background(), Request{Owner: "bob@example.net", Domain: "example.net", Filename: "b", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.startPut("bob@example.net") { // bob has an upload running: the next is 429
		t.Fatal("startPut")
	}
	defer f.svc.endPut("bob@example.net")

	cases := []struct {
		name, method, path, headers string
		status, chunked             int // the answer to a body of 10 bytes (or 1 MiB), and to a chunked one
	}{
		{"unknown slot", "PUT", "/upload/0123456789abcdef0123456789abcdef/x?e=1&t=x", "", 404, 404},
		{"bad token", "PUT", path(typed.PutURL) + "x", "Content-Type: text/plain\r\n", 403, 403},
		{"uploaded already", "PUT", path(done.PutURL), "", 409, 409},
		{"longer than the slot", "PUT", path(short.PutURL), "", 413, 411},
		{"wrong type", "PUT", path(typed.PutURL), "Content-Type: text/html\r\n", 415, 411},
		{"too many uploads", "PUT", path(busy.PutURL), "", 429, 411},
		{"GET with a body", "GET", path(done.GetURL), "", 200, 200},
		{"HEAD with a body", "HEAD", path(done.GetURL), "", 200, 200},
		{"OPTIONS with a body", "OPTIONS", path(done.GetURL), "", 204, 204},
		{"GET of no file", "GET", "/file/0123456789abcdef0123456789abcdef/x", "", 404, 404},
		{"POST", "POST", path(typed.PutURL), "", 405, 405},
		{"no route", "PUT", "/nothing", "", 404, 404},
	}
	for _, c := range cases {
		for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
			for _, length := range []string{"Content-Length: 10\r\n", "Content-Length: 1048576\r\n", "Transfer-Encoding: chunked\r\n"} {
				t.Run(c.name+"/"+strings.TrimSpace(expect+length), func(t *testing.T) {
					head := c.method + " " + c.path + " HTTP/1.1\r\nHost: x\r\n" + c.headers + expect + length + "\r\n"
					status, continued := sendWithheld(t, addr, head, 5*time.Second)
					want := c.status
					switch {
					case strings.Contains(length, "chunked"):
						want = c.chunked
					case strings.Contains(length, "1048576") && c.method == "PUT" && c.status >= 413:
						want = 413 // longer than the slot, which is checked first
					}
					if status != want || continued {
						t.Fatalf("answer %d (100 Continue first: %v), want %d alone", status, continued, want)
					}
				})
			}
		}
	}

	// Answers that read the whole body, or had none, keep the connection.
	s := f.issue(t, "k.txt", 5, "")
	if resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("hello"), nil); resp.StatusCode != 201 || resp.Close {
		t.Errorf("complete PUT: %s, Connection: close %v", resp.Status, resp.Close)
	}
	if resp, _ := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 200 || resp.Close {
		t.Errorf("GET: %s, Connection: close %v", resp.Status, resp.Close)
	}
}

// TestUnreadAnswersCloseConnections: a client that pipelines requests and
// reads none of the answers cannot hold the connection once the socket
// buffers are full: each answer must go out within answerTimeout, or the
// connection is closed (the client's writes then fail). Before, the
// server's write blocked for ever.
func TestUnreadAnswersCloseConnections(t *testing.T) {
	old := answerTimeout
	answerTimeout = 200 * time.Millisecond
	// restored after the fixture's server has closed (cleanups run last in, first out)
	t.Cleanup(func() { answerTimeout = old })
	f := newFixture(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := []byte(strings.Repeat("GET /file/0123456789abcdef0123456789abcdef/x HTTP/1.1\r\nHost: x\r\n\r\n", 1000))
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for i := 0; ; i++ {
		if _, err := conn.Write(req); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server still holds the connection after %d requests nobody read the answers of", i*1000)
			}
			return // the server closed it
		}
		if i == 10000 {
			t.Fatal("10,000,000 requests went through without the answers being read")
		}
	}
}

// TestTrickledUploadIsCut: an upload whose body comes slower than
// putMinRate is cut once its time at that rate is up, though it was never
// idle for putIdleTimeout; nothing of it is kept and the slot stays usable.
func TestTrickledUploadIsCut(t *testing.T) {
	oldRate, oldGrace, oldIdle := putMinRate, putGrace, putIdleTimeout
	putMinRate, putGrace, putIdleTimeout = 1<<20, 100*time.Millisecond, time.Hour
	// restored after the fixture's server has closed (cleanups run last in, first out)
	t.Cleanup(func() { putMinRate, putGrace, putIdleTimeout = oldRate, oldGrace, oldIdle })
	f := newFixture(t)
	s := f.issue(t, "slow.bin", 1000, "")
	head := "PUT " + strings.TrimPrefix(f.url(s.PutURL), f.srv.URL) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 10)
	if status, _ := sendWithheld(t, strings.TrimPrefix(f.srv.URL, "http://"), head, 10*time.Second); status != http.StatusBadRequest {
		t.Fatalf("trickled upload: %d, want 400", status)
	}
	if resp, _ := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET of the cut upload: %s", resp.Status)
	}
	f.put(t, s, bytes.Repeat([]byte("y"), 1000))
}
