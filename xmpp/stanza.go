// Package xmpp is mediaslot's XMPP side: the XEP-0114 component link to the
// server and the stanzas it answers (service discovery, ping, version and
// XEP-0363 slot requests). It is the only package that knows stanzas; it turns
// them into calls on the upload package and back.
package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"unicode/utf8"

	"mediaslot/refusal"
)

// Namespaces used on the wire.
const (
	nsDiscoInfo    = "http://jabber.org/protocol/disco#info"
	nsDiscoItems   = "http://jabber.org/protocol/disco#items"
	nsPing         = "urn:xmpp:ping"
	nsVersion      = "jabber:iq:version"
	nsData         = "jabber:x:data"
	nsUpload       = "urn:xmpp:http:upload:0"
	nsUploadLegacy = "urn:xmpp:http:upload" // XEP-0363 v0.2, still asked for by old clients
)

// stanza is one top-level element read from the stream: its start element and
// every token up to and including its end element, copied out of the decoder.
type stanza struct {
	start  xml.StartElement
	tokens []xml.Token
	size   int // bytes of names, attribute values and text, and tokenSize per token: about what it holds in memory
}

// A copied token takes about tokenSize bytes beyond its names and text
// (the boxed struct and its place in stanza.tokens), an attribute
// attrSize: a stanza of 256 KiB of empty elements holds 8 MiB, which
// counting names and text alone took for 128 KiB, so that the relay's
// bound on waiting stanzas (see relay.after) let through 60 times its
// memory.
const (
	tokenSize = 64
	attrSize  = 48
)

func (s stanza) attr(local string) string { return attrOf(s.start, local) }

// readStanza reads the rest of the element opened by start. The server
// bounds stanza sizes (Prosody: 256 KiB on component streams by default), so
// holding one in memory is safe.
func readStanza(r xml.TokenReader, start xml.StartElement) (stanza, error) {
	st := stanza{start: start.Copy(), size: startSize(start)}
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return st, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			st.size += startSize(t)
		case xml.EndElement:
			depth--
		case xml.CharData:
			st.size += len(t)
		}
		st.size += tokenSize
		st.tokens = append(st.tokens, xml.CopyToken(tok))
	}
	return st, nil
}

// startSize is what the names and attributes of a start element take.
func startSize(t xml.StartElement) int {
	n := len(t.Name.Space) + len(t.Name.Local)
	for _, a := range t.Attr {
		n += attrSize + len(a.Name.Space) + len(a.Name.Local) + len(a.Value)
	}
	return n
}

// child is one child element of a stanza: its start and all its tokens,
// start and end element included.
type child struct {
	start  xml.StartElement
	tokens []xml.Token
}

func (c child) reader() xml.TokenReader { return &sliceReader{toks: c.tokens} }

// children splits the stanza's content into its child elements; text
// between them (whitespace) is dropped.
func (s stanza) children() []child {
	var out []child
	depth, begin := 0, 0
	for i, tok := range s.tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				begin = i
				out = append(out, child{start: t})
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out[len(out)-1].tokens = s.tokens[begin : i+1]
			}
		}
	}
	if len(out) > 0 && out[len(out)-1].tokens == nil {
		out = out[:len(out)-1] // the stanza's own end element closes no child
	}
	return out
}

// payload returns the first child element of the stanza and a reader of its
// tokens, or ok=false if it has none.
func (s stanza) payload() (start xml.StartElement, r xml.TokenReader, ok bool) {
	c := s.children()
	if len(c) == 0 {
		return xml.StartElement{}, nil, false
	}
	return c[0].start, c[0].reader(), true
}

type sliceReader struct{ toks []xml.Token }

func (r *sliceReader) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

// marshal encodes v for a sender.
func marshal(v any) ([]byte, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return b, nil
}

// rawXML is a payload already written as XML text, placed in a reply as is.
type rawXML []byte

// escape writes s escaped for use in XML text or a quoted attribute value,
// as xml.EscapeText does.
func escape(b *bytes.Buffer, s string) { escapeText(b, s, true) }

// escapeText writes s as encoding/xml's Encoder writes text (newline false)
// or attribute values and xml.EscapeText (newline true), byte for byte,
// without its rune-by-rune writes: markup characters become references,
// and characters XML cannot carry (invalid UTF-8, most control
// characters) become U+FFFD. Runs of plain text, such as a whole base64
// thumbnail, are copied in one write.
func escapeText(b *bytes.Buffer, s string, newline bool) {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		width := 1
		esc := escapes[c]
		switch {
		case esc == "" && c >= 0x20 && c < 0x80, c == '\n' && !newline:
			i++
			continue
		case esc != "":
		case c < 0x20:
			esc = "\uFFFD"
		default:
			var r rune
			r, width = utf8.DecodeRuneInString(s[i:])
			if (r != utf8.RuneError || width > 1) && xmlChar(r) {
				i += width
				continue
			}
			esc = "\uFFFD"
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		i += width
		last = i
	}
	b.WriteString(s[last:])
}

// escapes are the references escapeText writes for ASCII characters;
// other control characters become U+FFFD.
var escapes = [256]string{
	'&': "&amp;", '<': "&lt;", '>': "&gt;", '"': "&#34;", '\'': "&#39;",
	'\t': "&#x9;", '\n': "&#xA;", '\r': "&#xD;",
}

// xmlChar reports whether r, at least U+0080, is a character XML 1.0
// allows.
func xmlChar(r rune) bool {
	return r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// result writes a result IQ around payload, as marshal would write an iq
// with that payload, without reflection.
func result(reply iq, payload rawXML) []byte {
	var b bytes.Buffer
	b.Grow(len(payload) + 128)
	b.WriteString(`<iq id="`)
	escape(&b, reply.ID)
	b.WriteString(`" type="result" from="`)
	escape(&b, reply.From)
	b.WriteString(`" to="`)
	escape(&b, reply.To)
	b.WriteString(`">`)
	b.Write(payload)
	b.WriteString(`</iq>`)
	return b.Bytes()
}

// iq is an outgoing IQ stanza. On a component stream every stanza needs from
// and to (ejabberd closes the stream otherwise), so both are always written.
type iq struct {
	XMLName xml.Name             `xml:"iq"`
	ID      string               `xml:"id,attr"`
	Type    string               `xml:"type,attr"`
	From    string               `xml:"from,attr"`
	To      string               `xml:"to,attr"`
	Payload any                  `xml:",omitempty"`
	Error   *refusal.StanzaError `xml:",omitempty"`
}
