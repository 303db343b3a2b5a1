package relay

import (
	"context"
	"strings"
	"testing"

	"mediaslot/offline"
)

// ejabberd 23.01's advertisement, as it arrives (urn:xmpp:privilege:1).
const privAd1 = `<message from='example.net' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:1'>` +
	`<perm access='message' type='outgoing'/><perm access='roster' type='none'/><perm access='presence' type='managed_entity'/></privilege></message>`

// ejabberd reports no presences when the component connects, and none when
// a client goes away without an unavailable presence. A recipient it has
// not reported on this connection may be online: the message goes to the
// server at once (which delivers it, or keeps it in mod_offline) instead
// of waiting in the queue for a presence that may not come for days. A
// recipient seen going offline is queued as on Prosody.
func TestRelayPrivilege1UnknownRecipientGoesToServer(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd1)
	f.in(t, relayMsg("e1", `<body>hi</body>`, "to:bob@example.net"))
	got := f.next(t)
	for _, want := range []string{`<message from="upload.example.net" to="example.net"><privilege xmlns="urn:xmpp:privilege:1">`,
		`<message xmlns="jabber:client" type="chat" id="e1" from="alice@example.net" to="bob@example.net">`} {
		if !strings.Contains(got, want) {
			t.Errorf("delivery lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "urn:xmpp:delay") {
		t.Errorf("delay on a direct delivery: %s", got)
	}
	f.quiet(t)
	if f.q.Pending("bob@example.net") {
		t.Fatal("a recipient ejabberd never reported was queued: the message would wait for a presence that may never come")
	}

	// carol is seen going offline: now the queue keeps her message
	f.in(t, `<presence from='carol@example.net/phone' to='upload.example.net'/>`)
	f.in(t, `<presence type='unavailable' from='carol@example.net/phone' to='upload.example.net'/>`)
	f.in(t, relayMsg("e2", `<body>later</body>`, "to:carol@example.net"))
	waitQueue(t, f.q, "carol@example.net", true)
	f.quiet(t)
	f.in(t, `<presence from='carol@example.net/laptop' to='upload.example.net'/>`)
	got = f.next(t)
	if !strings.Contains(got, `id="e2"`) || !strings.Contains(got, `<delay xmlns="urn:xmpp:delay" from="upload.example.net"`) {
		t.Errorf("queued delivery: %s", got)
	}
	waitQueue(t, f.q, "carol@example.net", false)
}

// Prosody (privilege:2) reports every connected user on connect, so a user
// it did not report is offline and queued.
func TestRelayPrivilege2UnknownRecipientIsQueued(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	f.in(t, relayMsg("p1", `<body>hi</body>`, "to:bob@example.net"))
	waitQueue(t, f.q, "bob@example.net", true)
	f.quiet(t)
}

// A reconnection forgets what the old connection reported, on either server.
func TestPresencesForgottenOnReconnect(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	ctx := context.Background()
	if on, known, _ := f.r.presence.State(ctx, "bob@example.net"); !on || !known {
		t.Fatalf("bob: online %v known %v", on, known)
	}
	f.r.LinkUp()
	if on, known, _ := f.r.presence.State(ctx, "bob@example.net"); on || known {
		t.Fatalf("bob after a reconnection: online %v known %v", on, known)
	}
}
