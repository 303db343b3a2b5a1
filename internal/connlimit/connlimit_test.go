package connlimit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server serves ln with a handler answering 200 "ok" and reports each
// connection's state changes on states.
func server(t *testing.T, lim Limits) (l *Listener, states chan http.ConnState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = New(ln, lim)
	states = make(chan http.ConnState, 64)
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, s http.ConnState) { states <- s },
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l, states
}

// dial connects from the loopback address from (127.0.0.x).
func dial(t *testing.T, l *Listener, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends a GET on c and returns the answer's status and body.
func get(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wait(t *testing.T, states chan http.ConnState, want http.ConnState) {
	t.Helper()
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no connection became %v", want)
		}
	}
}

// One address gets PerAddr connections; the next is answered 503 and
// closed, while other addresses still get in, and a place that is freed
// can be taken again.
func TestPerAddress(t *testing.T) {
	l, states := server(t, Limits{Total: 10, PerAddr: 2, Answer503: true})
	a1, a2 := dial(t, l, "127.0.0.1"), dial(t, l, "127.0.0.1")
	wait(t, states, http.StateNew)
	wait(t, states, http.StateNew)
	code, body := get(t, dial(t, l, "127.0.0.1"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "too many connections from your address") {
		t.Fatalf("third connection from one address: %d %q, want 503", code, body)
	}
	if code, _ := get(t, dial(t, l, "127.0.0.2")); code != http.StatusOK {
		t.Fatalf("another address: %d", code)
	}
	if code, _ := get(t, a2); code != http.StatusOK {
		t.Fatalf("an admitted connection: %d", code)
	}
	a1.Close()
	wait(t, states, http.StateClosed)
	if code, _ := get(t, dial(t, l, "127.0.0.1")); code != http.StatusOK {
		t.Fatalf("after a connection closed: %d", code)
	}
	if s := l.Stats(); s.RefusedPerAddr != 1 || s.RefusedTotal != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Past Total connections, from any address, the next is answered 503, or
// only closed without Answer503 (under TLS).
func TestTotal(t *testing.T) {
	for _, answer := range []bool{true, false} {
		l, states := server(t, Limits{Total: 2, PerAddr: 2, Answer503: answer})
		dial(t, l, "127.0.0.1")
		dial(t, l, "127.0.0.2")
		wait(t, states, http.StateNew)
		wait(t, states, http.StateNew)
		c := dial(t, l, "127.0.0.3")
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if answer && (err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 503 ") || !strings.Contains(string(b), "the server has too many connections")) {
			t.Fatalf("past the total: %q %v, want a 503", b, err)
		}
		if !answer && (len(b) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET)) {
			t.Fatalf("past the total, without answer: %q %v, want a close", b, err)
		}
		if s := l.Stats(); s.RefusedTotal != 1 || s.Open != 2 {
			t.Fatalf("stats %+v", s)
		}
	}
}

// fakeListener hands out the results queued on it.
type fakeListener struct {
	net.Listener
	next chan func() (net.Conn, error)
}

func (f fakeListener) Accept() (net.Conn, error) { return (<-f.next)() }

// An accept error is counted and returned, and the listener reports it as
// failing until an accept succeeds.
func TestAcceptErrors(t *testing.T) {
	f := fakeListener{next: make(chan func() (net.Conn, error), 2)}
	l := New(f, Limits{Total: 1})
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	f.next <- func() (net.Conn, error) { return nil, emfile }
	if _, err := l.Accept(); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Accept: %v, want EMFILE", err)
	}
	if s := l.Stats(); s.AcceptErrors != 1 || s.AcceptFailing == nil || !strings.Contains(s.AcceptFailing.Error(), "too many open files") {
		t.Fatalf("after EMFILE: %+v", s)
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	f.next <- func() (net.Conn, error) { return c1, nil }
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.AcceptErrors != 1 || s.AcceptFailing != nil || s.Open != 1 {
		t.Fatalf("after an accept: %+v", s)
	}
	c.Close()
	c.Close()
	if s := l.Stats(); s.Open != 0 {
		t.Fatalf("after closing twice: %+v", s)
	}
}

func TestFitOpenFiles(t *testing.T) {
	for _, c := range []struct {
		total int
		files uint64
		want  int
	}{{1000, 1024, 480}, {1000, 524288, 1000}, {0, 1024, 0}, {1000, 0, 1000}, {1000, 10, 1}, {1000, 1 << 62, 1000}} {
		if got := FitOpenFiles(c.total, c.files); got != c.want {
			t.Errorf("FitOpenFiles(%d, %d) = %d, want %d", c.total, c.files, got, c.want)
		}
	}
}

// Connections count against their IPv4 address, or the /64 of their IPv6
// address (one subscriber usually has a whole /64).
func TestAddrKey(t *testing.T) {
	key := func(s string) string {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return addrKey(a).String()
	}
	for in, want := range map[string]string{
		"192.0.2.7:1234":           "192.0.2.7",
		"[::ffff:192.0.2.7]:1234":  "192.0.2.7",
		"[2001:db8:1:2::1]:1":      "2001:db8:1:2::",
		"[2001:db8:1:2:ffff::9]:2": "2001:db8:1:2::",
		"[2001:db8:1:3::1]:1":      "2001:db8:1:3::",
	} {
		if got := key(in); got != want {
			t.Errorf("addrKey(%s) = %s, want %s", in, got, want)
		}
	}
}
