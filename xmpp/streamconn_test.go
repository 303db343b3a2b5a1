package xmpp

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestStreamConnCoalescesWhileBusy: stanzas sent while the read loop is
// busy go out in one write when it reads again; stanzas sent while it waits
// for input go out at once.
func TestStreamConnCoalescesWhileBusy(t *testing.T) {
	a, peer := tcpPair(t)
	counted := &countingConn{Conn: a}
	c := newStreamConn(counted)

	for _, s := range []string{"<a/>", "<b/>", "<c/>"} {
		if err := c.send([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.writes.Load(); n != 0 {
		t.Fatalf("%d writes while the read loop was busy, want 0", n)
	}
	read := make(chan string, 1)
	go func() {
		buf := make([]byte, 16)
		n, _ := c.Read(buf) // flushes, then waits for the peer
		read <- string(buf[:n])
	}()
	got := make([]byte, len("<a/><b/><c/>"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "<a/><b/><c/>" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if n := counted.writes.Load(); n != 1 {
		t.Fatalf("%d writes for three held-back stanzas, want 1", n)
	}
	// The read loop now waits in Read: a stanza from another goroutine
	// must not wait for it.
	if err := c.send([]byte("<d/>")); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len("<d/>"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "<d/>" {
		t.Fatalf("peer read %q, %v while the loop waited for input", got, err)
	}
	if _, err := peer.Write([]byte("<x/>")); err != nil {
		t.Fatal(err)
	}
	if s := <-read; s != "<x/>" {
		t.Fatalf("Read returned %q", s)
	}
	// mellium's own writes (the stream's close) come after what is held back.
	if err := c.send([]byte("<e/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("</stream:stream>")); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len("<e/></stream:stream>"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "<e/></stream:stream>" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

// TestStreamConnBoundsHeldBack: a busy read loop holds back at most
// maxPending bytes.
func TestStreamConnBoundsHeldBack(t *testing.T) {
	a, peer := tcpPair(t)
	counted := &countingConn{Conn: a}
	c := newStreamConn(counted)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	stanza := make([]byte, 1000)
	for range 3 * maxPending / len(stanza) {
		if err := c.send(stanza); err != nil {
			t.Fatal(err)
		}
		if len(c.pending) >= maxPending {
			t.Fatalf("%d bytes held back", len(c.pending))
		}
	}
	if n := counted.writes.Load(); n < 2 {
		t.Fatalf("%d writes for %d bytes, want the buffer flushed when full", n, 3*maxPending)
	}
}
