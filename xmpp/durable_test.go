package xmpp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/offline/offlinetest"
	"mediaslot/testserver"
	"mediaslot/xmpp/relay"
	"mediaslot/xmpp/wire"
)

var relayPolicy = relay.Policy{
	SenderDomains: []string{"example.net"}, RecipientDomains: []string{"example.net"},
	MaxStanzaBytes: 64 << 10, MaxBoBBytes: 8 << 10, MaxRecipients: 4,
}

// privAd is the server's XEP-0356 advertisement as Prosody sends it.
const privAd = `<message from='example.net' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:2'><perm access='message' type='outgoing'/><perm access='presence' type='managed_entity'/></privilege></message>`

// relayMsg is a relay message from alice with body for bob.
func relayMsg(id, body string) string {
	return `<message type='chat' id='` + id + `' from='alice@example.net/phone' to='upload.example.net'>` + body +
		`<addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='bob@example.net'/></addresses></message>`
}

// lockedBuffer collects what the server end of a link reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

// A drain while the read loop is busy (it never reads again here, as when
// it waits for a slow disk or a stream of requests keeps it at work), then
// the process dies: every message the relay accepted has reached the
// server's socket or is still in the queue. A queue entry deleted while its
// stanza sat in streamConn's memory (the old behaviour) is a lost message.
func TestRelayDrainCrashLosesNothing(t *testing.T) {
	q := offlinetest.New(t, offline.Limits{})
	r := relay.New("upload.example.net", relayPolicy, q, nil, nil, slog.New(slog.DiscardHandler), nil)
	conn, peer := tcpPair(t)
	sc := newStreamConn(conn)
	var got lockedBuffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&got, peer); close(copied) }()
	send := func(_ context.Context, stanza []byte, mode wire.SendMode) error {
		if mode == wire.Written {
			return sc.sendWritten(stanza)
		}
		return sc.send(stanza)
	}

	const n = 50
	in := func(x string) { r.Handle(context.Background(), parseStanza(t, x), send) }
	in(privAd)
	for i := range n {
		in(relayMsg(fmt.Sprint(i), fmt.Sprintf("<body>durable %d</body>", i)))
	}
	testserver.WaitFor(t, 10*time.Second, "all queued", func() bool {
		s, err := q.Stats()
		return err == nil && s.Entries == n
	})
	in(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	testserver.WaitFor(t, 10*time.Second, "queue drained or all written", func() bool { return !q.Pending("bob@example.net") || got.count("durable ") == n })

	// kill -9: what streamConn holds back dies with the process
	conn.Close()
	<-copied
	left := map[string]bool{}
	if _, err := q.Drain(context.Background(), "bob@example.net", func(e offline.Entry) error {
		left[string(e.Stanza)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for i := range n {
		body := fmt.Sprintf("<body>durable %d</body>", i)
		if got.count(body) == 0 && !anyContains(left, body) {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d accepted messages lost: their queue entries were deleted before their bytes were written", lost, n)
	}
}

func anyContains(m map[string]bool, s string) bool {
	for k := range m {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// A delivery counts only once the server has read it: the component pings
// the server after it, and the queue entry stays until the answer comes.
// Bytes in the socket buffers are not enough: a process killed with input
// unread resets the connection, and the server's kernel may drop what the
// server had not read yet.
func TestRelayEntryKeptUntilServerAnswers(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1:0")
	q := offlinetest.New(t, offline.Limits{})
	c, _, _ := startComponent(t, Options{Server: srv.address, Queue: q, Relay: relayPolicy})
	l := srv.nextLink(t)
	l.send(privAd)
	l.send(relayMsg("k", "<body>keep me</body>"))
	testserver.WaitFor(t, 10*time.Second, "bob's message queued", func() bool { return q.Pending("bob@example.net") })
	l.send(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	if got := l.reply(t); !strings.Contains(got, "keep me") {
		t.Fatalf("want the delivery, got %s", got)
	}
	ping := l.reply(t)
	if !strings.Contains(ping, `<ping xmlns="urn:xmpp:ping"`) || !strings.Contains(ping, `to="example.net"`) {
		t.Fatalf("want a ping to the server after the delivery, got %s", ping)
	}
	if !q.Pending("bob@example.net") {
		t.Fatal("entry deleted before the server confirmed it read the delivery")
	}
	id := attrValueOf(t, ping, "id")
	// a client that guessed the id confirms nothing
	l.send(`<iq type='result' id='` + id + `' from='mallory@example.net/x' to='upload.example.net'/>`)
	l.send(`<iq type='get' id='after' from='alice@example.net/x' to='upload.example.net'><query xmlns='jabber:iq:version'/></iq>`)
	if got := l.reply(t); !strings.Contains(got, `id="after"`) {
		t.Fatalf("want the version reply, got %s", got)
	}
	// the read loop handled the forged answer before the version request:
	// had it counted, the delivery's waiter would be gone by now
	_, waiting := c.acks.waiting.Load(id)
	if !waiting || !q.Pending("bob@example.net") {
		t.Fatal("delivery confirmed by an answer forged by a client")
	}
	l.send(`<iq type='result' id='` + id + `' from='example.net' to='upload.example.net'/>`)
	testserver.WaitFor(t, 10*time.Second, "bob's entry deleted", func() bool { return !q.Pending("bob@example.net") })
}

func attrValueOf(t *testing.T, x, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(x, " "+name+`="`)
	v, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatalf("no %s in %s", name, x)
	}
	return v
}
