package relay

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"mediaslot/offline"
	"mediaslot/xmpp/wire"
)

// A remote server routes its users' directed presence to the component,
// from as many made-up accounts and resources as it likes. The relay can
// never queue for them (not a recipient domain), so the presence table
// must not keep them: it would grow until the next reconnect.
func TestPresenceTableIgnoresOtherDomains(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	const n = 2000
	for i := range n {
		u := strconv.Itoa(i)
		f.in(t, `<presence from='u`+u+`@evil.org/r`+u+`' to='upload.example.net'/>`)
		f.in(t, `<presence from='u`+u+`@evil.org/r`+u+`' to='upload.example.net' type='unavailable'/>`)
	}
	p := f.r.presence.(*offline.MemPresence)
	if n := p.Len(); n != 0 {
		t.Fatalf("presence table keeps other domains: %d users after %d remote accounts", n, n)
	}
	// a recipient domain's presence still counts
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	if on, known, _ := p.State(context.Background(), "bob@example.net"); !on || !known {
		t.Fatalf("bob's presence lost: online %v known %v", on, known)
	}
}

// TestRelayAddressTricks: case and resource variants of one recipient get
// one copy; addresses marked delivered, a second <addresses/> and a
// sender's own ofrom neither add recipients nor forge the sender; the
// component and the sender's domain are no recipients.
func TestRelayAddressTricks(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	// bob offline: everything is queued, one entry per bare JID
	f.in(t, relayMsg("dup", `<body>x</body>`, "to:BOB@Example.NET", "cc:bob@example.net/phone", "bcc:Bob@EXAMPLE.net/Laptop", "to:bob@example.net"))
	waitQueue(t, f.q, "bob@example.net", true)
	f.quiet(t)
	st, err := f.q.Stats()
	if err != nil || st.Entries != 1 {
		t.Fatalf("variants of bob queued %d entries (%v), want 1", st.Entries, err)
	}

	for name, c := range map[string]struct{ msg, cond string }{
		"all delivered": {`<message type='chat' id='d' from='alice@example.net/phone' to='upload.example.net'><body>x</body><addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='carol@example.net' delivered='true'/></addresses></message>`, "bad-request"},
		"component":     {relayMsg("c", `<body>x</body>`, "to:upload.example.net"), "bad-request"},
		"domain":        {relayMsg("c", `<body>x</body>`, "to:example.net"), "bad-request"},
		"too many in two <addresses/>": {`<message type='chat' id='t' from='alice@example.net/phone' to='upload.example.net'><body>x</body>` +
			`<addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='a@example.net'/><address type='to' jid='b@example.net'/><address type='to' jid='c@example.net'/></addresses>` +
			`<addresses xmlns='http://jabber.org/protocol/address'><address type='bcc' jid='d@example.net'/><address type='bcc' jid='e@example.net'/><address type='bcc' jid='f@example.net'/><address type='bcc' jid='g@example.net'/><address type='bcc' jid='h@example.net'/></addresses></message>`, "policy-violation"},
	} {
		f.in(t, c.msg)
		if got := f.next(t); !strings.Contains(got, "<"+c.cond+" ") {
			t.Errorf("%s: want %s, got %s", name, c.cond, got)
		}
	}
	// a forged ofrom is dropped; the relay names the real sender
	f2 := newRelayFixture(t, offline.Limits{})
	f2.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`) // no privileges: ofrom path
	f2.in(t, `<message type='chat' id='o' from='alice@example.net/phone' to='upload.example.net'><body>x</body><addresses xmlns='http://jabber.org/protocol/address'>`+
		`<address type='ofrom' jid='ceo@example.net'/><address type='to' jid='bob@example.net'/></addresses></message>`)
	got := f2.next(t)
	if strings.Contains(got, "ceo@") || !strings.Contains(got, `<address type="ofrom" jid="alice@example.net/phone"/>`) {
		t.Errorf("ofrom: %s", got)
	}
}

// Senders of other domains can never use the relay, yet a remote server
// may send relay messages from as many made-up accounts as it likes. They
// must be refused at once, without a place among the stanzas waiting for
// the disk: each made-up sender would get its own in-flight share, and
// together they would fill the bound of all senders' waiting stanzas and
// leave local users refused (here while the disk is stuck).
func TestRelayRemoteSendersTakeNoInFlightPlace(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	stuck := stuckQueue{Queue: f.q, release: make(chan struct{})}
	defer close(stuck.release)
	f.r.q = stuck
	var refused atomic.Int64
	send := func(_ context.Context, stanza []byte, _ wire.SendMode) error {
		if strings.Contains(string(stanza), "<forbidden ") {
			refused.Add(1)
		}
		return nil
	}
	f.inVia(t, privAd, send)
	// a local sender's message holds every shard's worker on the disk
	for i := range relayShards {
		f.r.shards[i] <- func(*shard) { <-stuck.release }
	}
	big := `<body>` + strings.Repeat("x", 60<<10) + `</body>`
	n := relayInFlightBytes/(60<<10) + 10
	for i := range n {
		f.inVia(t, strings.Replace(relayMsg(fmt.Sprint(i), big, "to:bob@example.net"), "alice@example.net", fmt.Sprintf("u%d@evil.org", i), 1), send)
	}
	if got := refused.Load(); got != int64(n) {
		t.Errorf("%d of %d messages from another domain refused at once", got, n)
	}
	r := f.r
	r.mu.Lock()
	inBytes := r.inBytes
	r.mu.Unlock()
	if inBytes != 0 {
		t.Fatalf("messages from another domain hold %d bytes among the stanzas waiting for the disk", inBytes)
	}
	var busy atomic.Int64
	f.inVia(t, relayMsg("local", `<body>hi</body>`, "to:bob@example.net"), func(_ context.Context, stanza []byte, _ wire.SendMode) error {
		busy.Add(1)
		return nil
	})
	if busy.Load() != 0 {
		t.Error("a local sender was refused after a flood from another domain")
	}
}

// A ping from another domain's user waits for no relay message (those are
// refused at once), so it is answered at once and takes no place among
// the stanzas waiting for the disk, where made-up remote accounts could
// fill the shards of local senders.
func TestRemotePingTakesNoInFlightPlace(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	release := make(chan struct{})
	defer close(release)
	for i := range relayShards {
		f.r.shards[i] <- func(*shard) { <-release }
	}
	var answered atomic.Int64
	send := func(_ context.Context, stanza []byte, _ wire.SendMode) error {
		if strings.Contains(string(stanza), `type="result"`) {
			answered.Add(1)
		}
		return nil
	}
	const n = 100
	for i := range n {
		f.inVia(t, fmt.Sprintf(`<iq type='get' id='p%d' from='u%d@evil.org/r' to='upload.example.net'><ping xmlns='urn:xmpp:ping'/></iq>`, i, i), send)
	}
	if got := answered.Load(); got != n {
		t.Errorf("%d of %d remote pings answered at once", got, n)
	}
	r := f.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inBytes != 0 || len(r.inFlight) != 0 {
		t.Errorf("remote pings hold %d bytes, %d senders among the waiting stanzas", r.inBytes, len(r.inFlight))
	}
}
