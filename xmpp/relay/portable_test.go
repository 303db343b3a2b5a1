package relay

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func tokens(t *testing.T, s string) []xml.Token {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	var out []xml.Token
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, xml.CopyToken(tok))
	}
}

// canonical decodes XML into (namespace, name, attributes, text) events, so
// two texts compare equal when they mean the same XML.
func canonical(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for _, tok := range tokens(t, s) {
		switch v := tok.(type) {
		case xml.StartElement:
			b.WriteString("<{" + v.Name.Space + "}" + v.Name.Local)
			for _, a := range v.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" && a.Name.Space == "" {
					continue
				}
				b.WriteString(" {" + a.Name.Space + "}" + a.Name.Local + "=" + a.Value)
			}
			b.WriteString(">")
		case xml.EndElement:
			b.WriteString("</>")
		case xml.CharData:
			b.WriteString(string(v))
		}
	}
	return b.String()
}

// encoded is encodeTokens into a buffer of its own.
func encoded(toks []xml.Token, parentNS string) ([]byte, error) {
	var b bytes.Buffer
	err := encodeTokens(bufio.NewWriter(&b), toks, parentNS)
	return b.Bytes(), err
}

func TestPortableKeepsMeaning(t *testing.T) {
	payload := `<body>hi &amp; &lt;x&gt; é</body>` +
		`<data xmlns="urn:xmpp:bob" cid="sha1+0@bob.xmpp.org" type="image/png" max-age="86400">QUJD</data>` +
		`<file-sharing xmlns="urn:xmpp:sfs:0" disposition="inline"><file xmlns="urn:xmpp:file:metadata:0"><hash xmlns="urn:xmpp:hashes:2" algo="sha-256">x</hash><desc xml:lang="de">Bild</desc>` +
		`<thumbnail xmlns="urn:xmpp:thumbs:1" uri="cid:sha1+0@bob.xmpp.org" media-type="image/png" width="8" height="8"/></file>` +
		`<sources><url-data xmlns="http://jabber.org/protocol/url-data" target="https://x/y"/></sources></file-sharing>` +
		`<p:foo xmlns:p="urn:p" p:attr="1"><p:bar/><baz xmlns="urn:q"/></p:foo><x xmlns="jabber:x:oob"><url>https://x/y</url></x>`
	in := `<message xmlns="jabber:component:accept">` + payload + `</message>`
	toks := tokens(t, in)
	inner := toks[1 : len(toks)-1]
	out, err := encoded(inner, "jabber:component:accept")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out), `xmlns="urn:xmpp:bob"`) != 1 {
		t.Errorf("namespace written more than once: %s", out)
	}
	// put into another stanza namespace, the payload means the same as the original there
	for _, ns := range []string{"jabber:client", "jabber:component:accept"} {
		got := canonical(t, `<message xmlns="`+ns+`">`+string(out)+`</message>`)
		want := canonical(t, `<message xmlns="`+ns+`">`+payload+`</message>`)
		if got != want {
			t.Errorf("in %s:\n got %s\nwant %s", ns, got, want)
		}
	}
	// and it survives a second pass unchanged
	again, err := encoded(tokens(t, string(out)), "")
	if err != nil || string(again) != string(out) {
		t.Errorf("second pass changed the text:\n%s\n%s", out, again)
	}
}
