package upload

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// raw sends one request exactly as written and returns the status code.
func raw(t *testing.T, f *fixture, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0 // the server hung up: no answer at all
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusContinue {
			return resp.StatusCode
		}
	}
}

// TestBadInputHTTP is the bad-input matrix of the HTTP front: each request
// gets exactly this status, nothing of a refused upload is stored, and the
// slot stays usable for a correct PUT afterwards.
func TestBadInputHTTP(t *testing.T) {
	f := newFixture(t)
	other := f.issue(t, "other.txt", 5, "text/plain")
	path := func(s Slot) string { return strings.TrimPrefix(f.url(s.PutURL), f.srv.URL) }
	put := func(p, headers, body string) string {
		return "PUT " + p + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + "\r\n" + body
	}
	cases := []struct {
		name   string
		req    func(s Slot) string
		status int
	}{
		{"good", func(s Slot) string { return put(path(s), "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello") }, 201},
		{"expect 100-continue", func(s Slot) string {
			return put(path(s), "Content-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n", "hello")
		}, 201},
		{"expect with wrong length", func(s Slot) string {
			return put(path(s), "Content-Type: text/plain\r\nContent-Length: 6\r\nExpect: 100-continue\r\n", "")
		}, 413},
		{"chunked", func(s Slot) string {
			return put(path(s), "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n")
		}, 411},
		{"no length", func(s Slot) string { return put(path(s), "Content-Type: text/plain\r\n", "") }, 411},
		{"length over int64", func(s Slot) string {
			return put(path(s), "Content-Type: text/plain\r\nContent-Length: 99999999999999999999\r\n", "hello")
		}, 400},
		{"negative length", func(s Slot) string { return put(path(s), "Content-Type: text/plain\r\nContent-Length: -5\r\n", "") }, 400},
		{"two lengths", func(s Slot) string {
			return put(path(s), "Content-Type: text/plain\r\nContent-Length: 5\r\nContent-Length: 6\r\n", "hello")
		}, 400},
		{"longer", func(s Slot) string {
			return put(path(s), "Content-Type: text/plain\r\nContent-Length: 6\r\n", "hello!")
		}, 413},
		{"shorter", func(s Slot) string { return put(path(s), "Content-Type: text/plain\r\nContent-Length: 4\r\n", "hell") }, 400},
		{"wrong type", func(s Slot) string { return put(path(s), "Content-Type: text/html\r\nContent-Length: 5\r\n", "hello") }, 415},
		{"no type", func(s Slot) string { return put(path(s), "Content-Length: 5\r\n", "hello") }, 415},
		{"other slot's token", func(s Slot) string {
			p := strings.Replace(path(other), other.ID, s.ID, 1)
			return put(p, "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 403},
		{"no token", func(s Slot) string {
			return put(strings.Split(path(s), "?")[0], "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 403},
		{"tampered token", func(s Slot) string {
			// Two other characters at the end (a token can end in "AA"
			// itself, once in 4096 slots).
			p, tail := path(s)[:len(path(s))-2], "AA"
			if strings.HasSuffix(path(s), tail) {
				tail = "BB"
			}
			return put(p+tail, "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 403},
		{"raised expiry", func(s Slot) string {
			p := path(s)
			i := strings.Index(p, "e=") + 2
			return put(p[:i]+"9"+p[i+1:], "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 403},
		{"NUL in path", func(s Slot) string {
			return put(strings.Replace(path(s), s.ID, s.ID+"%00", 1), "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 404},
		{"traversal in path", func(s Slot) string {
			return put("/upload/..%2f..%2fetc/passwd", "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 404},
		{"short id", func(s Slot) string {
			return put(strings.Replace(path(s), s.ID, s.ID[:31], 1), "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 404},
		{"upper-case id", func(s Slot) string {
			return put(strings.Replace(path(s), s.ID, strings.ToUpper(s.ID), 1), "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 404},
		{"DELETE", func(s Slot) string { return "DELETE " + path(s) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" }, 405},
		{"POST", func(s Slot) string {
			return "POST " + path(s) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
		}, 405},
		{"PUT to a download URL", func(s Slot) string {
			return put(strings.Replace(strings.TrimPrefix(f.url(s.GetURL), f.srv.URL), "", "", 1), "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
		}, 405},
		{"GET before upload", func(s Slot) string {
			return "GET " + strings.TrimPrefix(f.url(s.GetURL), f.srv.URL) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		}, 404},
		{"bad range before upload", func(s Slot) string {
			return "GET " + strings.TrimPrefix(f.url(s.GetURL), f.srv.URL) + " HTTP/1.1\r\nHost: x\r\nRange: bytes=9-1\r\nConnection: close\r\n\r\n"
		}, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := f.issue(t, "m.txt", 5, "text/plain")
			if got := raw(t, f, c.req(s)); got != c.status {
				t.Fatalf("status %d, want %d", got, c.status)
			}
			if c.status == 201 {
				return
			}
			if resp, _ := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 404 {
				t.Fatalf("after a refused request the file exists: %s", resp.Status)
			}
			if resp, _ := do(t, "PUT", f.url(s.PutURL), []byte("hello"), ctype("text/plain")); resp.StatusCode != 201 {
				t.Fatalf("the slot is not usable after the refusal: %s", resp.Status)
			}
		})
	}

	// An upload that stops half way leaves nothing and the slot usable.
	s := f.issue(t, "half.bin", 1000, "")
	f.halfPut(t, s, 1000, nil)
	if resp, _ := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("half an upload is served: %s", resp.Status)
	}
	if resp, _ := do(t, "PUT", f.url(s.PutURL), []byte(strings.Repeat("y", 1000)), nil); resp.StatusCode != 201 {
		t.Fatalf("slot unusable after a broken upload: %s", resp.Status)
	}
	// Nothing already accepted was lost on the way.
	if resp, got := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 200 || string(got) != strings.Repeat("y", 1000) {
		t.Fatalf("accepted file: %s %d bytes", resp.Status, len(got))
	}
}
