package client

import (
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"mediaslot/client/aesgcm"
)

// The media message: how a file shared through an upload service is
// announced, so that every kind of client shows something useful.
//
//   - body = the URL: all clients show it; Conversations and Dino treat a body
//     equal to the OOB URL as a file.
//   - XEP-0066 <x xmlns='jabber:x:oob'><url/>: the classic file link.
//   - XEP-0447 <file-sharing/> with XEP-0446 metadata (type, name, size,
//     dimensions, SHA-256, XEP-0264 thumbnail) and the URL as a source: lets
//     receivers check what they download and show a preview first.
//   - XEP-0231 <data xmlns='urn:xmpp:bob'/>: the thumbnail the metadata points
//     at with a cid: URI, carried inline (a direct child of <message/>).
//   - XEP-0454 links (encrypted files) go in the body and nowhere else: the
//     message itself is not encrypted here, so a thumbnail, the name or the
//     plaintext hash next to it would leak what the encryption hides.

// Media describes one shared file.
type Media struct {
	URL           string // GET URL, or aesgcm:// link when Encrypted
	Name          string
	MediaType     string
	Size          int64  // of the content the recipient ends up with
	SHA256        []byte // of that content; nil to leave the hash out
	Width, Height int    // images; 0 = unknown
	Thumbnail     *Thumbnail
	Encrypted     bool // XEP-0454: body only
}

// bobMaxAge is how long receivers may cache a thumbnail (XEP-0231 max-age).
const bobMaxAge = 86400

type messageOut struct {
	XMLName   xml.Name `xml:"message"`
	ID        string   `xml:"id,attr"`
	To        string   `xml:"to,attr"`
	Type      string   `xml:"type,attr"`
	Body      string   `xml:"body"`
	Addresses *addressesXML
	OOB       *oobXML
	SFS       *fileSharingXML
	BoB       *bobXML
}

type addressesXML struct {
	XMLName xml.Name     `xml:"http://jabber.org/protocol/address addresses"`
	Address []addressXML `xml:"address"`
}

type addressXML struct {
	Type string `xml:"type,attr"`
	JID  string `xml:"jid,attr"`
}

type oobXML struct {
	XMLName xml.Name `xml:"jabber:x:oob x"`
	URL     string   `xml:"url"`
}

type fileSharingXML struct {
	XMLName     xml.Name `xml:"urn:xmpp:sfs:0 file-sharing"`
	Disposition string   `xml:"disposition,attr,omitempty"`
	File        fileXML
	Sources     struct {
		URLData []urlDataXML `xml:"http://jabber.org/protocol/url-data url-data"`
	} `xml:"sources"`
}

type fileXML struct {
	XMLName   xml.Name  `xml:"urn:xmpp:file:metadata:0 file"`
	MediaType string    `xml:"media-type,omitempty"`
	Name      string    `xml:"name,omitempty"`
	Size      string    `xml:"size,omitempty"`
	Width     int       `xml:"width,omitempty"`
	Height    int       `xml:"height,omitempty"`
	Hash      []hashXML `xml:"urn:xmpp:hashes:2 hash"`
	Thumbnail *thumbnailXML
}

type hashXML struct {
	XMLName xml.Name `xml:"urn:xmpp:hashes:2 hash"`
	Algo    string   `xml:"algo,attr"`
	Value   string   `xml:",chardata"`
}

type thumbnailXML struct {
	XMLName   xml.Name `xml:"urn:xmpp:thumbs:1 thumbnail"`
	URI       string   `xml:"uri,attr"`
	MediaType string   `xml:"media-type,attr"`
	Width     int      `xml:"width,attr,omitempty"`
	Height    int      `xml:"height,attr,omitempty"`
}

type urlDataXML struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/url-data url-data"`
	Target  string   `xml:"target,attr"`
}

type bobXML struct {
	XMLName xml.Name `xml:"urn:xmpp:bob data"`
	CID     string   `xml:"cid,attr"`
	Type    string   `xml:"type,attr"`
	MaxAge  int      `xml:"max-age,attr"`
	Data    string   `xml:",chardata"`
}

// disposition tells receivers whether to show the file in the conversation.
func disposition(mediaType string) string {
	for _, p := range []string{"image/", "video/", "audio/"} {
		if strings.HasPrefix(mediaType, p) {
			return "inline"
		}
	}
	return "attachment"
}

// mediaMessage builds the chat message announcing m to to; addresses, if
// any, become a XEP-0033 <addresses/> of type "to" (to is then the relay).
func mediaMessage(id string, to jid.JID, addresses []jid.JID, m Media) messageOut {
	msg := messageOut{ID: id, To: to.String(), Type: "chat", Body: m.URL}
	if len(addresses) > 0 {
		msg.Addresses = &addressesXML{}
		for _, a := range addresses {
			msg.Addresses.Address = append(msg.Addresses.Address, addressXML{Type: "to", JID: a.String()})
		}
	}
	if m.Encrypted {
		return msg
	}
	msg.OOB = &oobXML{URL: m.URL}
	f := fileXML{MediaType: m.MediaType, Name: m.Name, Size: strconv.FormatInt(m.Size, 10), Width: m.Width, Height: m.Height}
	if m.SHA256 != nil {
		f.Hash = []hashXML{{Algo: "sha-256", Value: base64.StdEncoding.EncodeToString(m.SHA256)}}
	}
	if t := m.Thumbnail; t != nil {
		f.Thumbnail = &thumbnailXML{URI: "cid:" + t.CID(), MediaType: t.MediaType, Width: t.Width, Height: t.Height}
		msg.BoB = &bobXML{CID: t.CID(), Type: t.MediaType, MaxAge: bobMaxAge, Data: base64.StdEncoding.EncodeToString(t.Data)}
	}
	msg.SFS = &fileSharingXML{Disposition: disposition(m.MediaType), File: f}
	msg.SFS.Sources.URLData = []urlDataXML{{Target: m.URL}}
	return msg
}

// Message is an incoming message, with the files it shares.
type Message struct {
	From jid.JID
	// Via is set when a XEP-0033 relay delivered the message: From is then
	// the relay and Via its claim of the original sender (ofrom), which only
	// the relay vouches for.
	Via   string
	ID    string
	Body  string
	Files []SharedFile
	// DelayFrom is the from of an XEP-0203 delay: who kept the message
	// while the recipient was offline (the server's domain for its own
	// offline storage, the relay's JID for the relay's queue); "" if none.
	DelayFrom string
}

// SharedFile is one file a message points at; all but URL come from the
// sender's XEP-0446 metadata, if any.
type SharedFile struct {
	URL           string // http(s) or aesgcm://
	Name          string // "" if none
	MediaType     string
	Size          int64  // -1 if none
	SHA256        []byte // nil if none
	Width, Height int
	// Thumbnail is the preview the metadata points at, if the message
	// carried it as XEP-0231 data (a cid: URI).
	Thumbnail *Thumbnail
}

type messageIn struct {
	From      string   `xml:"from,attr"`
	ID        string   `xml:"id,attr"`
	Type      string   `xml:"type,attr"`
	Body      []string `xml:"body"`
	Addresses *addressesXML
	OOB       []oobXML         `xml:"jabber:x:oob x"`
	SFS       []fileSharingXML `xml:"urn:xmpp:sfs:0 file-sharing"`
	BoB       []bobXML         `xml:"urn:xmpp:bob data"`
	Delay     []delayXML       `xml:"urn:xmpp:delay delay"`
	Error     *errorXML        `xml:"error"`
}

type delayXML struct {
	From string `xml:"from,attr"`
}

func (m messageIn) message() Message {
	out := Message{ID: m.ID}
	if len(m.Delay) > 0 {
		out.DelayFrom = m.Delay[0].From
	}
	out.From, _ = jid.Parse(m.From)
	if len(m.Body) > 0 {
		out.Body = m.Body[0]
	}
	if m.Addresses != nil {
		for _, a := range m.Addresses.Address {
			if a.Type == "ofrom" {
				out.Via = a.JID
			}
		}
	}
	seen := make(map[string]bool)
	add := func(f SharedFile) {
		if f.URL != "" && !seen[f.URL] {
			seen[f.URL] = true
			out.Files = append(out.Files, f)
		}
	}
	for _, s := range m.SFS {
		f := SharedFile{Name: s.File.Name, MediaType: s.File.MediaType, Size: -1, Width: s.File.Width, Height: s.File.Height}
		if th := s.File.Thumbnail; th != nil {
			f.Thumbnail = m.bob(strings.TrimPrefix(th.URI, "cid:"))
			if f.Thumbnail != nil {
				f.Thumbnail.Width, f.Thumbnail.Height = th.Width, th.Height
			}
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(s.File.Size), 10, 64); err == nil && n >= 0 {
			f.Size = n
		}
		for _, h := range s.File.Hash {
			if h.Algo == "sha-256" {
				f.SHA256, _ = base64.StdEncoding.DecodeString(strings.TrimSpace(h.Value))
			}
		}
		for _, src := range s.Sources.URLData {
			if fetchable(src.Target) {
				f.URL = src.Target
				break
			}
		}
		add(f)
	}
	for _, o := range m.OOB {
		if u := strings.TrimSpace(o.URL); fetchable(u) {
			add(SharedFile{URL: u, Size: -1})
		}
	}
	if len(out.Files) == 0 {
		if u, ok := bodyURL(out.Body); ok {
			add(SharedFile{URL: u, Size: -1})
		}
	}
	return out
}

// bob returns the XEP-0231 data with the content id cid carried in the
// message, if its content matches the id.
func (m messageIn) bob(cid string) *Thumbnail {
	for _, d := range m.BoB {
		if d.CID != cid {
			continue
		}
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(d.Data))
		t := &Thumbnail{Data: data, MediaType: d.Type}
		if err == nil && strings.HasPrefix(cid, "sha1+") && t.CID() == cid {
			return t
		}
	}
	return nil
}

// bodyURL recognises a body that is only a link: one http(s) or aesgcm URL,
// optionally followed by XEP-0454's data: thumbnail lines.
func bodyURL(body string) (string, bool) {
	lines := strings.Split(strings.TrimSpace(body), "\n")
	first := strings.TrimSpace(lines[0])
	if !fetchable(first) || strings.ContainsAny(first, " \t") {
		return "", false
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(strings.TrimSpace(l), "data:") {
			return "", false
		}
	}
	return first, true
}

// fetchable reports whether Download can fetch s.
func fetchable(s string) bool {
	if aesgcm.IsURL(s) {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
