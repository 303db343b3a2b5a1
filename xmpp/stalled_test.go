package xmpp

import (
	"context"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
	"mediaslot/upload"
)

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
	c, _, _ := startComponent(t, Options{Server: srv.address, Slots: slots})
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
