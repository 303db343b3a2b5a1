package xmpp

import (
	"encoding/xml"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"

	"mediaslot/refusal"
	"mediaslot/upload"
)

// FuzzParseSlotRequest: whatever a client puts in a slot request, the
// parser neither panics nor passes on a size it could not read; a refusal
// always carries a text for the client; and it takes what encoding/xml's
// Decode into tagged fields (referenceParse, the parser it replaced) takes.
func FuzzParseSlotRequest(f *testing.F) {
	for _, s := range []string{
		`<request xmlns='urn:xmpp:http:upload:0' filename='a.jpg' size='5' content-type='image/jpeg'/>`,
		`<request xmlns='urn:xmpp:http:upload'><filename>a</filename><size>5</size></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='99999999999999999999'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='-1'/>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' size='5'><ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='2026-09-01T12:00:00Z'/></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' filename='a' filename='b' size='1'/>`,
		`<request xmlns='urn:xmpp:http:upload:0'><request/></request>`,
		`<request xmlns='urn:xmpp:http:upload'><filename>a<b>x</b>c</filename><size>1</size><size>2</size><content-type> t </content-type></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' xmlns:x='urn:x' x:filename='q' filename='a' size='3'><filename>z</filename><x:size>9</x:size></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' size='1'><ephemeral xmlns='urn:xmpp:http:upload:purpose:0'/><message xmlns='urn:xmpp:http:upload:purpose:0'/></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' size='1'><ephemeral xmlns='urn:xmpp:http:upload:purpose:0' xmlns:y='urn:y' y:expire-before='bad'/></request>`,
		`<request xmlns='urn:xmpp:http:upload:0' size='1'><x><ephemeral xmlns='urn:xmpp:http:upload:purpose:0'/></x></request>`,
		`<request xmlns='urn:xmpp:http:upload'><filename/><size>7</size></request>`,
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
		wantReq, wantRef := referenceParse(&sliceReader{toks: toks})
		if (ref == nil) != (wantRef == nil) || (ref != nil && ref.Text != wantRef.Text) || req != wantReq {
			t.Fatalf("parse of %q:\n got %+v %+v\nwant %+v %+v", in, req, ref, wantReq, wantRef)
		}
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

// referenceParse is the slot request parser before parseSlotRequest walked
// the tokens itself: encoding/xml's Decode into tagged fields.
func referenceParse(r xml.TokenReader) (upload.Request, *refusal.Error) {
	type slotRequest struct {
		XMLName           xml.Name
		Filename          string `xml:"filename,attr"`
		Size              string `xml:"size,attr"`
		ContentType       string `xml:"content-type,attr"`
		LegacyFilename    string `xml:"filename"`
		LegacySize        string `xml:"size"`
		LegacyContentType string `xml:"content-type"`
		Purposes          []struct {
			XMLName      xml.Name
			ExpireBefore string `xml:"expire-before,attr"`
		} `xml:",any"`
	}
	tok, err := r.Token()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return upload.Request{}, badRequest("The slot request is not well-formed")
	}
	seen := map[xml.Name]bool{}
	for _, a := range start.Attr {
		if seen[a.Name] {
			return upload.Request{}, badRequest("The attribute %s appears twice", a.Name.Local)
		}
		seen[a.Name] = true
	}
	var req slotRequest
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(start), r)).Decode(&req); err != nil {
		return upload.Request{}, badRequest("The slot request is not well-formed")
	}
	if req.XMLName.Space == nsUploadLegacy {
		req.Filename, req.Size, req.ContentType = req.LegacyFilename, req.LegacySize, req.LegacyContentType
	}
	if req.Size == "" {
		return upload.Request{}, badRequest("The size is missing")
	}
	size, err := strconv.ParseInt(req.Size, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange && !strings.HasPrefix(req.Size, "-") {
			size = math.MaxInt64
		} else {
			return upload.Request{}, badRequest("The size must be a whole number of bytes")
		}
	}
	out := upload.Request{Filename: req.Filename, Size: size, ContentType: strings.TrimSpace(req.ContentType)}
	for _, p := range req.Purposes {
		if p.XMLName.Space != nsPurpose {
			continue
		}
		if out.Purpose != "" {
			return upload.Request{}, badRequest("A slot request has at most one purpose")
		}
		out.Purpose = upload.Purpose(p.XMLName.Local)
		if p.ExpireBefore != "" {
			t, err := time.Parse(time.RFC3339, p.ExpireBefore)
			if err != nil {
				return upload.Request{}, badRequest("expire-before must be an XEP-0082 date and time, such as 2026-09-01T12:00:00Z")
			}
			out.ExpireBefore = t
		}
	}
	return out, nil
}
