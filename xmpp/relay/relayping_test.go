package relay

import (
	"fmt"
	"strings"
	"testing"

	"mediaslot/offline"
)

// A ping after relay messages is answered after them, refusals included:
// clients (client.SendMedia, `mediaslot send`) use it as the barrier that
// tells them whether the relay took their messages.
func TestRelayPingAnsweredAfterSendersMessages(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	for range 5 {
		f.in(t, relayMsg("r", `<body/>`, "to:bob@evil.org")) // refused: foreign recipient
	}
	f.in(t, `<iq type='get' id='barrier' from='alice@example.net/phone' to='upload.example.net'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for i := range 5 {
		if got := f.next(t); !strings.Contains(got, `type="error"`) || !strings.Contains(got, "<forbidden ") {
			t.Fatalf("stanza %d: %s; want the refusals before the ping result", i, got)
		}
	}
	if got := f.next(t); !strings.Contains(got, `id="barrier"`) || !strings.Contains(got, `type="result"`) {
		t.Fatalf("want the ping result last, got %s", got)
	}
}

// A sender's messages to recipients who are offline go on to the queue
// without waiting for each other's commits (see shard), and still: a cap
// refusal, known only in its commit, comes before the answer to the ping
// sent after the message, and the recipient gets what was taken in order.
func TestRelayStartedMessagesKeepOrderAndRefusals(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{MaxMessages: 3, SenderShare: 1})
	f.in(t, privAd)
	for i := range 6 {
		f.in(t, relayMsg(fmt.Sprint("m", i), fmt.Sprintf(`<body>%d</body>`, i), "to:bob@example.net"))
	}
	f.in(t, `<iq type='get' id='barrier' from='alice@example.net/phone' to='upload.example.net'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for i := 3; i < 6; i++ {
		if got := f.next(t); !strings.Contains(got, fmt.Sprintf(`type="error" id="m%d"`, i)) || !strings.Contains(got, "<resource-constraint") {
			t.Fatalf("want the refusal of m%d before the ping result, got %s", i, got)
		}
	}
	if got := f.next(t); !strings.Contains(got, `id="barrier"`) || !strings.Contains(got, `type="result"`) {
		t.Fatalf("want the ping result after the refusals, got %s", got)
	}
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	for i := range 3 {
		if got := f.next(t); !strings.Contains(got, fmt.Sprintf(`id="m%d"`, i)) || !strings.Contains(got, `to="bob@example.net"`) {
			t.Fatalf("delivery %d: %s", i, got)
		}
	}
}
