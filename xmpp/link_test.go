package xmpp

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mediaslot/xmpp/wire"
)

// fakeServer is the server end of XEP-0114 links: it accepts components,
// does the handshake with mellium's server side and records what they send.
type fakeServer struct {
	t       *testing.T
	ln      net.Listener
	links   chan *serverLink
	address string
}

type serverLink struct {
	conn    net.Conn
	send    func(string)
	replies chan string
}

func newFakeServer(t *testing.T, addr string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, links: make(chan *serverLink, 4), address: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go s.accept()
	return s
}

func (s *fakeServer) accept() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serve(conn)
	}
}

// serve plays the server side of XEP-0114 (mellium has none): stream
// header, handshake check, then it records every stanza it receives.
func (s *fakeServer) serve(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	d := xml.NewDecoder(conn)
	if _, err := nextStart(d); err != nil { // <stream:stream>
		conn.Close()
		return
	}
	const id = "abc123"
	_, _ = io.WriteString(conn, `<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='upload.example.net' id='`+id+`'>`)
	var hs struct {
		XMLName xml.Name `xml:"handshake"`
		Digest  string   `xml:",chardata"`
	}
	start, err := nextStart(d)
	if err != nil || d.DecodeElement(&hs, &start) != nil {
		conn.Close()
		return
	}
	sum := sha1.Sum([]byte(id + "secret"))
	if hs.Digest != hex.EncodeToString(sum[:]) {
		_, _ = io.WriteString(conn, `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		conn.Close()
		return
	}
	_, _ = io.WriteString(conn, `<handshake/>`)
	_ = conn.SetDeadline(time.Time{})
	l := &serverLink{conn: conn, replies: make(chan string, 16)}
	l.send = func(x string) {
		if _, err := io.WriteString(conn, x); err != nil {
			s.t.Errorf("server send: %v", err)
		}
	}
	s.links <- l
	defer close(l.replies)
	for {
		start, err := nextStart(d)
		if err != nil {
			return
		}
		st, err := wire.Read(d, start)
		if err != nil {
			return
		}
		var b bytes.Buffer
		e := xml.NewEncoder(&b)
		_ = e.EncodeToken(st.Start)
		for _, tk := range st.Tokens {
			_ = e.EncodeToken(tk)
		}
		_ = e.Flush()
		l.replies <- b.String()
	}
}

// answer sends x as the server's answer to what the component sent: a
// test may end, closing the component, before its answers are all out.
func (l *serverLink) answer(x string) { _, _ = io.WriteString(l.conn, x) }

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

func (s *fakeServer) nextLink(t *testing.T) *serverLink {
	t.Helper()
	select {
	case l := <-s.links:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("component did not connect within 10 s")
		return nil
	}
}

func (l *serverLink) reply(t *testing.T) string {
	t.Helper()
	select {
	case r, ok := <-l.replies:
		if !ok {
			t.Fatal("link closed")
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no reply within 5 s")
		return ""
	}
}

// startComponent runs a component as upload.example.net with the options
// opt sets (Server at least; fakeSlots and no logs unless set) until the
// test ends or cancel is called; done gets what Run returned.
func startComponent(t *testing.T, opt Options) (c *Component, cancel context.CancelFunc, done chan error) {
	t.Helper()
	opt.JID, opt.Secret = "upload.example.net", "secret"
	if opt.Slots == nil {
		opt.Slots = fakeSlots{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, cancel, done
}

// The component starts before the server, connects once it is up, survives
// bad stanzas and panics, and reconnects when the link drops.
func TestLinkLifecycle(t *testing.T) {
	// reserve an address, then free it so the first dials fail
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()

	logs := make(recordHandler, 64)
	c, cancel, done := startComponent(t, Options{Server: addr, ReconnectMax: 500 * time.Millisecond, Logger: slog.New(logs)})
	// two failed attempts, each logged before its backoff
	deadline := time.After(10 * time.Second)
	for failed := 0; failed < 2; {
		select {
		case r := <-logs:
			if r.Message == "component link down; reconnecting" {
				failed++
			}
		case <-deadline:
			t.Fatalf("%d failed attempts to connect logged within 10 s, want 2", failed)
		}
	}
	if c.Connected() {
		t.Fatal("connected without a server")
	}
	srv := newFakeServer(t, addr)
	l := srv.nextLink(t)

	// garbage-ish stanzas and a panicking handler do not end the stream
	l.send(`<iq type='get' id='a' from='alice@example.net/x' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' filename='panic.txt' size='5'/></iq>`)
	if r := l.reply(t); !strings.Contains(r, "internal-server-error") {
		t.Fatalf("panic reply: %s", r)
	}
	l.send(`<iq type='get' id='b' from='alice@example.net/x' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' size='-1'><junk/></request></iq>`)
	if r := l.reply(t); !strings.Contains(r, "bad-request") {
		t.Fatalf("bad request reply: %s", r)
	}
	l.send(`<message from='alice@example.net/x' to='upload.example.net'><body>hi</body></message>`)
	l.send(`<iq type='get' id='c' from='alice@example.net/x' to='upload.example.net'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := l.reply(t); !strings.Contains(r, `id="c"`) || !strings.Contains(r, `type="result"`) || !strings.Contains(r, `from="upload.example.net"`) {
		t.Fatalf("ping reply: %s", r)
	}
	if !c.Connected() {
		t.Fatal("Connected() false on a live link")
	}

	// the server drops the link: the component comes back
	l.conn.Close()
	l = srv.nextLink(t)
	l.send(`<iq type='get' id='d' from='alice@example.net/x' to='upload.example.net'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := l.reply(t); !strings.Contains(r, `id="d"`) {
		t.Fatalf("ping after reconnect: %s", r)
	}

	// shutdown closes the stream and returns
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run returned %v", err)
		}
		done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewRejectsBadJID(t *testing.T) {
	for _, j := range []string{"me@upload.example.net", "upload.example.net/r", ""} {
		if _, err := New(Options{JID: j}); err == nil {
			t.Errorf("New(%q) accepted", j)
		}
	}
}

// Many replies written at once from the slot goroutines all arrive: a
// write's context cancelled right after the write must not break the next
// one (mellium v0.22 watches write contexts in goroutines; this wedged the
// link under load before the fix).
func TestConcurrentRepliesAllArrive(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	startComponent(t, Options{Server: addr, ReconnectMax: 500 * time.Millisecond})
	srv := newFakeServer(t, addr)
	l := srv.nextLink(t)
	const n = 2000
	go func() {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `<iq type='get' id='c%d' from='alice@example.net/x' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'/></iq>`, i)
		}
		l.send(b.String())
	}()
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < n {
		select {
		case r, ok := <-l.replies:
			if !ok {
				t.Fatalf("link closed after %d of %d replies", len(seen), n)
			}
			if !strings.Contains(r, `type="result"`) {
				t.Fatalf("reply: %s", r)
			}
			_, rest, _ := strings.Cut(r, `id="`)
			id, _, _ := strings.Cut(rest, `"`)
			seen[id] = true
		case <-deadline:
			t.Fatalf("%d of %d replies within 20 s: the link wedged", len(seen), n)
		}
	}
}
