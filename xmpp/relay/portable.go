package relay

import (
	"bufio"
	"encoding/xml"
	"io"

	"mediaslot/xmpp/wire"
)

// portable rewrites tokens as encoding/xml's Decoder.Token returns them
// (names carry namespace URLs, and the xmlns attributes stay too) into tokens
// that encoding/xml's Encoder, and so mellium's session, writes back as the
// same XML. Fed back unchanged, the Encoder would write every xmlns twice
// and mangle prefixed names.
//
// Each element gets an explicit xmlns only where its namespace differs from
// its parent's, starting from parentNS, so payloads copied out of one stanza
// inherit the namespace of the stanza they are put into (jabber:client when
// forwarded, jabber:component:accept when sent directly). Prefix
// declarations are dropped: the Encoder declares the prefixes it needs for
// namespaced attributes itself. (One corner stays literal: an element in the
// stanza namespace nested inside an element of another namespace keeps the
// original stanza namespace. No XEP puts stanza-namespace elements there.)
type portable struct {
	r     xml.TokenReader
	stack []string // default namespace of each open element
}

func newPortable(r xml.TokenReader, parentNS string) *portable {
	return &portable{r: r, stack: []string{parentNS}}
}

func (p *portable) Token() (xml.Token, error) {
	for {
		tok, err := p.r.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			ns := t.Name.Space
			attrs := make([]xml.Attr, 0, len(t.Attr)+1)
			if ns != p.stack[len(p.stack)-1] {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: ns})
			}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, a)
			}
			p.stack = append(p.stack, ns)
			return xml.StartElement{Name: xml.Name{Local: t.Name.Local}, Attr: attrs}, nil
		case xml.EndElement:
			if len(p.stack) > 1 {
				p.stack = p.stack[:len(p.stack)-1]
			}
			return xml.EndElement{Name: xml.Name{Local: t.Name.Local}}, nil
		case xml.CharData:
			return t, nil
		}
		// comments, processing instructions and directives are not allowed in XMPP: drop them
	}
}

// encodeTokens writes tokens (as Decoder.Token returns them) to w as XML
// text, with namespaces relative to parentNS, through encoding/xml's
// Encoder, which also declares the prefixes that namespaced attributes need,
// and flushes w. Each call has an Encoder of its own, so each element's
// prefixes are chosen as if it were alone; w is shared by the calls of one
// message: xml.NewEncoder writes into a *bufio.Writer it is given instead of
// allocating one of 4 KiB per element, which made a quarter of what the
// relay allocated per message.
func encodeTokens(w *bufio.Writer, toks []xml.Token, parentNS string) error {
	e := xml.NewEncoder(w)
	r := newPortable(wire.TokenReader(toks), parentNS)
	for {
		t, err := r.Token()
		if err == io.EOF {
			return e.Flush()
		}
		if err != nil {
			return err
		}
		if err := e.EncodeToken(t); err != nil {
			return err
		}
	}
}
