package relay

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/testserver"
	"mediaslot/xmpp/wire"
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
	f.r.q = stuck
	out := make(chan string, 4*relayShardDepth)
	send := func(_ context.Context, stanza []byte, _ wire.SendMode) error {
		out <- string(stanza)
		return nil
	}
	f.inVia(t, privAd, send)

	const flood = 2 * SenderInFlight
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
	if busy != flood-SenderInFlight {
		t.Errorf("%d refusals for %d flooded messages, want %d (all past the sender's share)", busy, flood, flood-SenderInFlight)
	}

	// the disk comes back: what was accepted is stored, nothing refused is
	close(stuck.release)
	testserver.WaitFor(t, 10*time.Second, "accepted messages stored", func() bool {
		s, err := f.q.Stats()
		return err == nil && s.Entries == SenderInFlight
	})
}
