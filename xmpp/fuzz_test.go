package xmpp

import (
	"encoding/xml"
	"strings"
	"testing"
)

// FuzzParseSlotRequest: whatever a client puts in a slot request, the
// parser neither panics nor passes on a size it could not read; a refusal
// always carries a text for the client.
func FuzzParseSlotRequest(f *testing.F) {
	for _, s := range []string{
		`<request xmlns='urn:xmpp:http:upload:0' filename='a.jpg' size='5' content-type='image/jpeg'/>`,
		`<request xmlns='urn:xmpp:http:upload'><filename>a</filename><size>5</size></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='99999999999999999999'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='-1'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='5'><ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='2026-09-01T12:00:00Z'/></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' filename='b' size='1'/>`,
		`<request xmlns='urn:xmpp:http:upload:0'><request/></request>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d := xml.NewDecoder(strings.NewReader(in))
		var toks []xml.Token
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			toks = append(toks, xml.CopyToken(tok))
		}
		req, ref := parseSlotRequest(&sliceReader{toks: toks})
		if ref != nil {
			if ref.Text == "" {
				t.Fatal("refusal without a text")
			}
			return
		}
		if req.Size == 0 && !strings.Contains(in, "0") {
			t.Fatalf("size 0 from %q", in)
		}
	})
}
