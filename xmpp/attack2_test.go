package xmpp

import (
	"strconv"
	"testing"

	"mediaslot/offline"
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
	p := f.h.relay.presence
	p.mu.Lock()
	online, seen := len(p.online), len(p.seen)
	p.mu.Unlock()
	if online != 0 || seen != 0 {
		t.Fatalf("presence table keeps other domains: %d online, %d seen after %d remote accounts", online, seen, n)
	}
	// a recipient domain's presence still counts
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	if on, known := p.state("bob@example.net"); !on || !known {
		t.Fatalf("bob's presence lost: online %v known %v", on, known)
	}
}
