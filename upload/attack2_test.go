package upload

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRangeBoundAfterUnsatisfiablePart: a part that starts past the end of
// the file is skipped by http.ServeContent without reading its end, so a
// malformed end there ("30000-x", "30000-5") must not let the ranges after
// it through unbounded (10,000 one-byte ranges made a multipart answer
// many times the file).
func TestRangeBoundAfterUnsatisfiablePart(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("0123456789"), 2000)
	s := f.issue(t, "r.bin", int64(len(body)), "")
	f.put(t, s, body)
	var many []string
	for i := range 10000 {
		many = append(many, fmt.Sprintf("%d-%d", 2*i, 2*i))
	}
	for _, first := range []string{"30000-x", "30000-5", "30000-"} {
		rng := "bytes=" + first + "," + strings.Join(many, ",")
		resp, got := do(t, "GET", f.url(s.GetURL), nil, map[string]string{"Range": rng})
		if len(got) > len(body)+maxRanges*200 {
			t.Errorf("%s,...: %s, %d bytes for a %d-byte file", first, resp.Status, len(got), len(body))
		}
		if resp.StatusCode == http.StatusPartialContent && strings.Count(string(got), "Content-Range") > maxRanges {
			t.Errorf("%s,...: %d parts", first, strings.Count(string(got), "Content-Range"))
		}
	}
}

// rawConn opens a connection to the fixture's server.
func (f *fixture) rawConn(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// answers reads every answer on c until the server closes it; it fails
// if the server does not close it before c's deadline.
func answers(t *testing.T, c net.Conn) []*http.Response {
	t.Helper()
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("connection not closed: %v (after %d answers)", err, len(out))
	}
	return out
}

// TestPipelinedEarlyErrors: many requests pipelined behind one that gets an
// early error with its body unsent get no answer (the connection closes),
// and a body that looks like a request is never taken for one.
func TestPipelinedEarlyErrors(t *testing.T) {
	old := lingerTimeout
	t.Cleanup(func() { lingerTimeout = old }) // after the server closed
	lingerTimeout = 200 * time.Millisecond
	f := newFixture(t)
	s := f.issue(t, "a.txt", 5, "")
	f.put(t, s, []byte("hello"))
	get := strings.TrimPrefix(s.GetURL, "https://files.example.net")
	const unknown = "/upload/0123456789abcdef0123456789abcdef/x?e=1&t=x"

	// 100 PUTs declaring bodies they never send, pipelined
	c := f.rawConn(t)
	var b strings.Builder
	for range 100 {
		b.WriteString("PUT " + unknown + " HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	}
	_, _ = io.WriteString(c, b.String())
	if got := answers(t, c); len(got) != 1 || got[0].StatusCode != http.StatusNotFound {
		t.Errorf("pipelined early errors: %d answers, want one 404", len(got))
	}

	// a smuggled GET inside a declared (and sent) body of a refused PUT
	c = f.rawConn(t)
	inner := "GET " + get + " HTTP/1.1\r\nHost: x\r\n\r\n"
	_, _ = io.WriteString(c, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", unknown, len(inner), inner))
	for _, r := range answers(t, c) {
		if r.StatusCode == http.StatusOK {
			t.Error("a request inside a body was answered")
		}
	}

	// Content-Length and Transfer-Encoding together: refused, nothing stored
	s2 := f.issue(t, "b.txt", 5, "")
	put := strings.TrimPrefix(s2.PutURL, "https://files.example.net")
	c = f.rawConn(t)
	_, _ = io.WriteString(c, "PUT "+put+" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	for _, r := range answers(t, c) {
		if r.StatusCode == http.StatusCreated {
			t.Error("a PUT with both Content-Length and Transfer-Encoding was stored")
		}
	}
	f.put(t, s2, []byte("hello")) // the slot is still usable
}

// TestDownloadPathVariants: the name in a download URL changes nothing
// (the stored name is served), and encoded traversal reaches no other file.
func TestDownloadPathVariants(t *testing.T) {
	f := newFixture(t)
	s := f.issue(t, "cat.jpg", 5, "image/jpeg")
	if resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("hello"), ctype("image/jpeg")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	id := strings.Split(strings.TrimPrefix(s.GetURL, "https://files.example.net/file/"), "/")[0]
	for _, p := range []string{
		"/file/" + id + "/evil.html",
		"/file/" + id + "/..%2f..%2fetc%2fpasswd",
		"/file/" + id + "%2f..%2fx/cat.jpg",
		"/file/%2e%2e/" + id + "/cat.jpg",
		"/file/" + strings.ToUpper(id) + "/cat.jpg",
		"/file/" + id + "/../" + id + "/cat.jpg",
	} {
		resp, _ := do(t, "GET", f.srv.URL+p, nil, nil)
		if resp.StatusCode == http.StatusOK && !strings.Contains(resp.Header.Get("Content-Disposition"), `filename=cat.jpg`) {
			t.Errorf("%s: served as %q", p, resp.Header.Get("Content-Disposition"))
		}
		t.Logf("%s: %s %q", p, resp.Status, resp.Header.Get("Content-Disposition"))
	}
}
