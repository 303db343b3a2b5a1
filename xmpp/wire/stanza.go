// Package wire is what mediaslot's XMPP packages share about stanzas on
// the component stream: a stanza read off the stream and taken apart
// (Stanza, Child), how replies are written as text and handed to the link
// (Sender, Result, Escape) and the XEP-0030 service discovery answer that
// the link builds and the protocols add to (Info). It speaks no protocol
// itself.
package wire

import (
	"encoding/xml"
	"io"
	"strings"
)

// Stanza is one top-level element read from the stream: its start element and
// every token up to and including its end element, copied out of the decoder.
type Stanza struct {
	Start  xml.StartElement
	Tokens []xml.Token
	// Size is bytes of names, attribute values and text, and tokenSize
	// per token: about what the stanza holds in memory.
	Size int
}

// A copied token takes about tokenSize bytes beyond its names and text
// (the boxed struct and its place in Stanza.Tokens), an attribute
// attrSize: a stanza of 256 KiB of empty elements holds 8 MiB, which
// counting names and text alone took for 128 KiB, so that the relay's
// bound on waiting stanzas let through 60 times its memory.
const (
	tokenSize = 64
	attrSize  = 48
)

// Attr returns the value of the stanza's attribute local (no namespace).
func (s Stanza) Attr(local string) string { return AttrOf(s.Start, local) }

// Read reads the rest of the element opened by start. The server
// bounds stanza sizes (Prosody: 256 KiB on component streams by default), so
// holding one in memory is safe.
func Read(r xml.TokenReader, start xml.StartElement) (Stanza, error) {
	st := Stanza{Start: start.Copy(), Size: startSize(start)}
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
			st.Size += startSize(t)
		case xml.EndElement:
			depth--
		case xml.CharData:
			st.Size += len(t)
		}
		st.Size += tokenSize
		st.Tokens = append(st.Tokens, xml.CopyToken(tok))
	}
	return st, nil
}

// Parse reads the first element of s, after a stream header if s starts
// with one, as Read does on the stream: for elements written as text (the
// relay's thumbnails) and for tests.
func Parse(s string) (Stanza, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return Stanza{}, err
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local != "stream" {
			return Read(d, start)
		}
	}
}

// startSize is what the names and attributes of a start element take.
func startSize(t xml.StartElement) int {
	n := len(t.Name.Space) + len(t.Name.Local)
	for _, a := range t.Attr {
		n += attrSize + len(a.Name.Space) + len(a.Name.Local) + len(a.Value)
	}
	return n
}

// Child is one child element of a stanza: its start and all its tokens,
// start and end element included.
type Child struct {
	Start  xml.StartElement
	Tokens []xml.Token
}

// Reader returns a reader of the child's tokens.
func (c Child) Reader() xml.TokenReader { return TokenReader(c.Tokens) }

// Children splits the stanza's content into its child elements; text
// between them (whitespace) is dropped.
func (s Stanza) Children() []Child {
	var out []Child
	depth, begin := 0, 0
	for i, tok := range s.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				begin = i
				out = append(out, Child{Start: t})
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out[len(out)-1].Tokens = s.Tokens[begin : i+1]
			}
		}
	}
	if len(out) > 0 && out[len(out)-1].Tokens == nil {
		out = out[:len(out)-1] // the stanza's own end element closes no child
	}
	return out
}

// Payload returns the first child element of the stanza and a reader of its
// tokens, or ok=false if it has none.
func (s Stanza) Payload() (start xml.StartElement, r xml.TokenReader, ok bool) {
	c := s.Children()
	if len(c) == 0 {
		return xml.StartElement{}, nil, false
	}
	return c[0].Start, c[0].Reader(), true
}

// TokenReader returns a reader of toks.
func TokenReader(toks []xml.Token) xml.TokenReader { return &sliceReader{toks: toks} }

type sliceReader struct{ toks []xml.Token }

func (r *sliceReader) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

// AttrOf returns the value of start's attribute local (no namespace), or "".
func AttrOf(start xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}
