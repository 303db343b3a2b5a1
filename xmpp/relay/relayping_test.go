package relay

import (
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
