package relay

import (
	"strings"
	"testing"

	"mediaslot/offline"
)

// forgedAd is a privilege advertisement that turns every privilege off,
// from whoever sends it.
func forgedAd(from string) string {
	return `<message from='` + from + `' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:1'>` +
		`<perm access='message' type='none'/><perm access='presence' type='none'/></privilege></message>`
}

// Only the server the component is attached to grants privileges. A forged
// advertisement from another component on the same server, a remote
// domain or a user cannot switch them off (the relay would then hand
// messages for offline users to the server instead of queueing them, and
// send them as from the component) nor on.
func TestRelayIgnoresForgedPrivileges(t *testing.T) {
	for _, from := range []string{"other.example.net", "evil.org", "example.net.evil.org", "mallory@example.net", "example.net/res"} {
		t.Run(from, func(t *testing.T) {
			f := newRelayFixture(t, offline.Limits{})
			f.in(t, privAd)
			f.in(t, forgedAd(from))
			f.in(t, relayMsg("q", `<body>hi</body>`, "to:bob@example.net"))
			waitQueue(t, f.q, "bob@example.net", true)
			f.quiet(t)
			f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
			if got := f.next(t); !strings.Contains(got, `from="alice@example.net" to="bob@example.net"`) {
				t.Fatalf("not forwarded as from alice after a forged advertisement: %s", got)
			}
		})
	}
	// nor does a forged one grant what the server did not
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, strings.Replace(privAd, "from='example.net'", "from='other.example.net'", 1))
	f.in(t, relayMsg("q", `<body>hi</body>`, "to:bob@example.net"))
	if got := f.next(t); !strings.Contains(got, `from="upload.example.net" to="bob@example.net"`) {
		t.Fatalf("forged privileges used: %s", got)
	}
}
