package relay

import (
	"encoding/xml"
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
