package xmpp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/testserver"
	"mediaslot/upload"
)

// stuckQueue is a queue whose disk does not answer until release closes.
type stuckQueue struct {
	offline.Queue
	release chan struct{}
}

func (q stuckQueue) Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error {
	<-q.release
	return q.Queue.Enqueue(ctx, sender, recipients, stanza)
}

// One sender floods the relay faster than its messages can be stored (here
// never, until the disk comes back): the read loop, which every stanza for
// the component goes through, must not wait for that sender's shard. The
// flood past the sender's share is refused with wait/resource-constraint,
// and another user's ping and slot request are answered at once.
func TestRelayFloodDoesNotStallOthers(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	stuck := stuckQueue{Queue: f.q, release: make(chan struct{})}
	f.h.relay.q = stuck
	out := make(chan string, 4*relayShardDepth)
	send := func(_ context.Context, stanza []byte, _ sendMode) error {
		out <- string(stanza)
		return nil
	}
	f.inVia(t, privAd, send)

	const flood = 2 * relaySenderInFlight
	loop := make(chan struct{})
	go func() {
		defer close(loop)
		for i := range flood {
			f.inVia(t, strings.Replace(relayMsg(fmt.Sprint(i), "<body>flood</body>", "to:bob@example.net"), "alice@", "mallory@", 1), send)
		}
		f.inVia(t, `<iq type='get' id='ping' from='alice@example.net/phone' to='upload.example.net'><ping xmlns='urn:xmpp:ping'/></iq>`, send)
		f.inVia(t, `<iq type='get' id='slot' from='alice@example.net/phone' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' filename='a.jpg' size='10'/></iq>`, send)
	}()
	select {
	case <-loop:
	case <-time.After(10 * time.Second):
		close(stuck.release)
		t.Fatal("the read loop blocked on a flooding sender's shard")
	}
	busy, answered := 0, map[string]bool{}
	for deadline := time.After(5 * time.Second); len(answered) < 2; {
		var s string
		select {
		case s = <-out:
		case <-deadline:
			t.Fatalf("alice's ping and slot request not answered while mallory's messages wait: %v", answered)
		}
		switch {
		case strings.Contains(s, "resource-constraint") && strings.Contains(s, "mallory@"):
			busy++
		case strings.Contains(s, `type="result"`):
			for _, id := range []string{"ping", "slot"} {
				if strings.Contains(s, `id="`+id+`"`) {
					answered[id] = true
				}
			}
		}
	}
	if busy != flood-relaySenderInFlight {
		t.Errorf("%d refusals for %d flooded messages, want %d (all past the sender's share)", busy, flood, flood-relaySenderInFlight)
	}

	// the disk comes back: what was accepted is stored, nothing refused is
	close(stuck.release)
	testserver.WaitFor(t, 10*time.Second, "accepted messages stored", func() bool {
		s, err := f.q.Stats()
		return err == nil && s.Entries == relaySenderInFlight
	})
}

// blockingSlots issues slots only when release closes.
type blockingSlots struct {
	fakeSlots
	called, release chan struct{}
}

func (s blockingSlots) Issue(ctx context.Context, r upload.Request) (upload.Slot, error) {
	close(s.called)
	<-s.release
	return s.fakeSlots.Issue(ctx, r)
}

// Stalled tells how long the read loop has held one stanza, for readiness.
func TestComponentStalled(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1:0")
	slots := blockingSlots{called: make(chan struct{}), release: make(chan struct{})}
	c, err := New(Options{JID: "upload.example.net", Server: srv.address, Secret: "secret", Slots: slots,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	l := srv.nextLink(t)
	if d := c.Stalled(); d != 0 {
		t.Fatalf("Stalled() = %v on an idle link", d)
	}
	l.send(`<iq type='get' id='s' from='alice@example.net/x' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' filename='a.jpg' size='10'/></iq>`)
	<-slots.called
	first := c.Stalled()
	testserver.WaitFor(t, 10*time.Second, "Stalled to grow", func() bool { return c.Stalled() > first })
	close(slots.release)
	if r := l.reply(t); !strings.Contains(r, `type="result"`) {
		t.Fatalf("reply: %s", r)
	}
	testserver.WaitFor(t, 10*time.Second, "Stalled back to 0", func() bool { return c.Stalled() == 0 })
}
