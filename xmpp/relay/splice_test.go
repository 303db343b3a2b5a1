package relay

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"

	"mediaslot/offline"
)

// FuzzDeliverySplice checks the byte splicing of deliver round trip: a
// message relayed with any body text and id, queued and then delivered
// (its stored bytes cut apart and wrapped for the privileged forward, a
// delay added), is well-formed XML whose inner message carries exactly the
// sender's id and body, from the sender's bare JID to the recipient.
func FuzzDeliverySplice(f *testing.F) {
	for _, seed := range [][2]string{
		{"m1", "hello"},
		{"a&b", `<>&'"`},
		{"x", "]]> </message> <message>"},
		{"", "line\nbreak\ttab"},
		{"ü", "emoji 😀 and \u00a0"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, id, body string) {
		if !utf8.ValidString(id) || !utf8.ValidString(body) || strings.ContainsFunc(id+body, notXMLChar) || body == "" {
			t.Skip() // not text a client can send
		}
		fx := newRelayFixture(t, offline.Limits{})
		fx.in(t, privAd)
		var esc bytes.Buffer
		_ = xml.EscapeText(&esc, []byte(body))
		var escID bytes.Buffer
		_ = xml.EscapeText(&escID, []byte(id))
		fx.in(t, relayMsg(escID.String(), "<body>"+esc.String()+"</body>", "to:bob@example.net"))
		waitQueue(t, fx.q, "bob@example.net", true)
		fx.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
		out := fx.next(t)
		var got struct {
			XMLName   xml.Name
			Privilege struct {
				Forwarded struct {
					Message struct {
						ID    string `xml:"id,attr"`
						From  string `xml:"from,attr"`
						To    string `xml:"to,attr"`
						Body  string `xml:"body"`
						Delay struct {
							Stamp string `xml:"stamp,attr"`
						} `xml:"delay"`
					} `xml:"message"`
				} `xml:"forwarded"`
			} `xml:"privilege"`
		}
		if err := xml.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("delivery is not well-formed XML: %v\n%s", err, out)
		}
		m := got.Privilege.Forwarded.Message
		// XML normalises line ends in text: a body's \r\n reads back as \n
		want := strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n")
		if m.ID != id || m.Body != want || m.From != "alice@example.net" || m.To != "bob@example.net" || m.Delay.Stamp == "" {
			t.Fatalf("delivered id %q body %q from %q to %q delay %q; want id %q body %q\n%s", m.ID, m.Body, m.From, m.To, m.Delay.Stamp, id, want, out)
		}
	})
}

// notXMLChar reports characters XML 1.0 cannot carry.
func notXMLChar(r rune) bool {
	return !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF)
}
