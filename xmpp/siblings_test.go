package xmpp

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/offline/offlinetest"
	"mediaslot/testserver"
)

// memBus is internal/siblings in memory: notes go to the named
// component's Acked.
type memBus struct {
	mu    sync.Mutex
	comps map[string]*Component
}

type busEnd struct {
	bus  *memBus
	self string
}

func (e busEnd) Self() string { return e.self }
func (e busEnd) Send(_ context.Context, to, note string) error {
	e.bus.mu.Lock()
	c := e.bus.comps[to]
	e.bus.mu.Unlock()
	c.Acked(note)
	return nil
}

// ejabberd hands the server's answer to a delivery's ping to any of the
// component's connections: the instance that gets it passes it on to the
// one that sent the ping, whose queue entry then goes; an answer naming no
// instance of ours, or one from anyone but the server, is not passed on.
func TestAckReachesTheSiblingThatAsked(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1:0")
	bus := &memBus{comps: map[string]*Component{}}
	q := offlinetest.New(t, offline.Limits{})
	a, _, _ := startComponent(t, Options{Server: srv.address, Queue: q, Relay: relayPolicy, Siblings: busEnd{bus, "a1"}})
	la := srv.nextLink(t)
	b, _, _ := startComponent(t, Options{Server: srv.address, Siblings: busEnd{bus, "b2"}})
	lb := srv.nextLink(t)
	bus.mu.Lock()
	bus.comps["a1"], bus.comps["b2"] = a, b
	bus.mu.Unlock()

	la.send(privAd)
	la.send(relayMsg("k", "<body>keep me</body>"))
	testserver.WaitFor(t, 10*time.Second, "bob's message queued", func() bool { return q.Pending("bob@example.net") })
	la.send(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	if got := la.reply(t); !strings.Contains(got, "keep me") {
		t.Fatalf("want the delivery, got %s", got)
	}
	probe := la.reply(t) // for several instances (grant.go)
	if !strings.Contains(probe, "<privilege") {
		t.Fatalf("want the probe, got %s", probe)
	}
	probeID := attrValueOf(t, probe, "id")
	id := attrValueOf(t, la.reply(t), "id")
	for _, id := range []string{id, probeID} {
		if !strings.HasPrefix(id, ackPrefix+"a1-") {
			t.Fatalf("ping or probe id %q does not name its instance", id)
		}
	}
	// forged by a client, or bounced, on the sibling's link: not passed on
	lb.send(`<iq type='result' id='` + id + `' from='mallory@example.net/x' to='upload.example.net'/>`)
	lb.send(`<message id='` + probeID + `' from='mallory@example.net/x' to='upload.example.net'/>`)
	lb.send(`<message type='error' id='` + probeID + `' from='example.net' to='upload.example.net'/>`)
	lb.send(`<iq type='get' id='after' from='alice@example.net/x' to='upload.example.net'><query xmlns='jabber:iq:version'/></iq>`)
	if got := lb.reply(t); !strings.Contains(got, `id="after"`) {
		t.Fatalf("want the version reply, got %s", got)
	}
	for _, id := range []string{id, probeID} {
		if _, waiting := a.acks.waiting.Load(id); !waiting {
			t.Fatal("a client's forged answer or a bounce on a sibling's link confirmed the delivery")
		}
	}
	// the server's answers, on the sibling's link
	lb.send(`<iq type='result' id='` + id + `' from='example.net' to='upload.example.net'/>`)
	lb.send(`<message type='normal' id='` + probeID + `' from='example.net' to='upload.example.net'/>`)
	testserver.WaitFor(t, 10*time.Second, "bob's entry deleted", func() bool { return !q.Pending("bob@example.net") })
}
