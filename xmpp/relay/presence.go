package relay

import (
	"encoding/xml"
	"sync"
)

// XEP-0356 namespaces: Prosody's mod_privilege speaks :2, ejabberd :1.
const (
	nsPrivilege1 = "urn:xmpp:privilege:1"
	nsPrivilege2 = "urn:xmpp:privilege:2"
)

// privileges is what the server granted the component (XEP-0356), as
// advertised in a message from the server right after the handshake.
type privileges struct {
	server   string // the server domain that granted them
	ns       string // privilege namespace the server speaks
	message  bool   // may send messages on behalf of local users ("outgoing")
	presence bool   // receives local users' presence ("managed_entity" or "roster")
}

// reportsPresence reports whether the server sends the presence of every
// connected user when the component connects, so that a user it has not
// reported since is offline. Prosody's mod_privilege (urn:xmpp:privilege:2)
// does. ejabberd's (23.01, urn:xmpp:privilege:1) forwards only the
// presences clients send while the component is connected: nothing on
// connect, and nothing when a client goes away without an unavailable
// presence.
func (p privileges) reportsPresence() bool { return p.ns != nsPrivilege1 }

type privilegeAd struct {
	XMLName xml.Name
	Perms   []struct {
		Access string `xml:"access,attr"`
		Type   string `xml:"type,attr"`
	} `xml:"perm"`
}

// parsePrivileges reads a <privilege/> advertisement.
func parsePrivileges(server string, r xml.TokenReader) (privileges, bool) {
	var ad privilegeAd
	if err := xml.NewTokenDecoder(r).Decode(&ad); err != nil {
		return privileges{}, false
	}
	p := privileges{server: server, ns: ad.XMLName.Space}
	for _, perm := range ad.Perms {
		switch perm.Access {
		case "message":
			p.message = perm.Type == "outgoing"
		case "presence":
			p.presence = perm.Type == "managed_entity" || perm.Type == "roster"
		}
	}
	return p, true
}

// presenceTable tracks which resources of each local user are available, as
// the server reports them through the presence privilege. Prosody sends
// the current presence of every connected user when the component connects,
// so the table starts empty on each connection (ejabberd does not: see
// privileges.reportsPresence).
type presenceTable struct {
	mu     sync.Mutex
	online map[string]map[string]struct{} // bare JID -> full JIDs
	seen   map[string]bool                // bare JIDs with any presence on this connection
}

// update records a presence.
func (p *presenceTable) update(bare, full string, available bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[bare] = true
	res := p.online[bare]
	if !available {
		delete(res, full)
		if len(res) == 0 {
			delete(p.online, bare)
		}
		return
	}
	if res == nil {
		res = make(map[string]struct{})
		p.online[bare] = res
	}
	res[full] = struct{}{}
}

// state reports whether bare is available, and whether any presence of
// bare arrived on this connection at all.
func (p *presenceTable) state(bare string) (online, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.online[bare]) > 0, p.seen[bare]
}

// reset empties the table; it must be called before the table's first use.
func (p *presenceTable) reset() {
	p.mu.Lock()
	p.online = make(map[string]map[string]struct{})
	p.seen = make(map[string]bool)
	p.mu.Unlock()
}
