package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"

	"mellium.im/xmpp/file"
	"mellium.im/xmpp/oob"

	"mediaslot/upload"
	"mediaslot/xmpp/wire"
)

// Namespaces of media sharing that mellium has none of; XEP-0066 (oob.NS)
// and XEP-0446 (file.NSMeta) come from mellium.
const (
	nsSFS     = "urn:xmpp:sfs:0"                      // XEP-0447
	nsThumbs  = "urn:xmpp:thumbs:1"                   // XEP-0264
	nsURLData = "http://jabber.org/protocol/url-data" // XEP-0103
)

// Previewer makes thumbnails of images uploaded through this mediaslot
// (upload.Service).
type Previewer interface {
	Preview(ctx context.Context, link string) (upload.Preview, bool)
}

// withPreview adds a thumbnail to a relayed media message that points at an
// image uploaded here and carries none: an XEP-0264 <thumbnail/> in its
// XEP-0446 metadata (a new XEP-0447 <file-sharing/> if it has none) and the
// PNG as XEP-0231 data, so recipients see the picture before they download
// it. Messages that already carry a thumbnail or BoB data are left alone.
func (r *Relay) withPreview(ctx context.Context, kids []wire.Child) []wire.Child {
	if r.previews == nil {
		return kids
	}
	var link string
	for _, c := range kids {
		for _, tok := range c.Tokens {
			if se, ok := tok.(xml.StartElement); ok && (se.Name.Space == nsBoB || se.Name.Space == nsThumbs) {
				return kids
			}
		}
		if link == "" {
			link = linkIn(c)
		}
	}
	if link == "" {
		return kids
	}
	p, ok := r.previews.Preview(ctx, link)
	if !ok {
		return kids
	}
	thumb := fmt.Sprintf(`<thumbnail xmlns=%q uri=%q media-type=%q width="%d" height="%d"/>`,
		nsThumbs, "cid:"+p.CID(), p.Thumbnail.MediaType, p.Width, p.Height)
	data := fmt.Sprintf(`<data xmlns=%q cid=%q type=%q max-age="86400">%s</data>`,
		nsBoB, p.CID(), p.Thumbnail.MediaType, base64.StdEncoding.EncodeToString(p.Data))
	out := make([]wire.Child, 0, len(kids)+2)
	placed := false
	for _, c := range kids {
		if !placed && c.Start.Name == (xml.Name{Space: nsSFS, Local: "file-sharing"}) {
			if withThumb, ok := insertInFile(c, thumb); ok {
				c, placed = withThumb, true
			}
		}
		out = append(out, c)
	}
	if !placed {
		var b bytes.Buffer
		fmt.Fprintf(&b, `<file-sharing xmlns=%q disposition="inline"><file xmlns=%q><media-type>`, nsSFS, file.NSMeta)
		wire.Escape(&b, p.MediaType)
		b.WriteString(`</media-type><name>`)
		wire.Escape(&b, p.Name)
		fmt.Fprintf(&b, `</name><size>%d</size>%s</file><sources><url-data xmlns=%q target="`, p.Size, thumb, nsURLData)
		wire.Escape(&b, link)
		b.WriteString(`"/></sources></file-sharing>`)
		out = append(out, parseChild(b.String()))
	}
	return append(out, parseChild(data))
}

// linkIn returns a download link named by an OOB <x/>, an SFS url-data
// source, or a body that is nothing but a URL.
func linkIn(c wire.Child) string {
	switch {
	case c.Start.Name == xml.Name{Space: oob.NS, Local: "x"}:
		var x struct {
			URL string `xml:"url"`
		}
		if xml.NewTokenDecoder(c.Reader()).Decode(&x) == nil {
			return strings.TrimSpace(x.URL)
		}
	case c.Start.Name == xml.Name{Space: nsSFS, Local: "file-sharing"}:
		for _, tok := range c.Tokens {
			if se, ok := tok.(xml.StartElement); ok && se.Name == (xml.Name{Space: nsURLData, Local: "url-data"}) {
				return wire.AttrOf(se, "target")
			}
		}
	case c.Start.Name.Local == "body":
		var body string
		if xml.NewTokenDecoder(c.Reader()).Decode(&body) == nil {
			body = strings.TrimSpace(body)
			if (strings.HasPrefix(body, "https://") || strings.HasPrefix(body, "http://")) && !strings.ContainsAny(body, " \n\t") {
				return body
			}
		}
	}
	return ""
}

// insertInFile puts the thumbnail element at the end of the XEP-0446 <file/>
// inside an SFS element.
func insertInFile(c wire.Child, thumb string) (wire.Child, bool) {
	depth, inFile := 0, 0
	for i, tok := range c.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if inFile == 0 && t.Name == (xml.Name{Space: file.NSMeta, Local: "file"}) {
				inFile = depth
			}
		case xml.EndElement:
			if inFile != 0 && depth == inFile {
				toks := append([]xml.Token{}, c.Tokens[:i]...)
				toks = append(toks, parseChild(thumb).Tokens...)
				toks = append(toks, c.Tokens[i:]...)
				return wire.Child{Start: c.Start, Tokens: toks}, true
			}
			depth--
		}
	}
	return c, false
}

// parseChild turns a well-formed element written here into a child.
func parseChild(s string) wire.Child {
	st, _ := wire.Parse(s)
	return wire.Child{Start: st.Start, Tokens: append([]xml.Token{st.Start}, st.Tokens...)}
}
