package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"mediaslot/refusal"
	"mediaslot/upload"
)

// nsPurpose is the namespace of XEP-0363 v1.2 upload purposes.
const nsPurpose = "urn:xmpp:http:upload:purpose:0"

func badRequest(format string, a ...any) *refusal.Error {
	return refusal.New(refusal.BadRequest, format, a...)
}

// parseSlotRequest decodes a XEP-0363 <request/> into an upload.Request
// (owner and domain left for the caller). Version 0.3 and later put the
// fields in attributes; the legacy namespace (v0.2) uses child elements.
// It refuses what cannot be parsed with a bad-request refusal; the upload
// policy judges the values. It walks the tokens itself, matching what
// encoding/xml's Decode into tagged fields would take (names matched by
// local name, the last of repeated fields, the direct text of a child),
// because reflection cost a fifth of a slot request.
func parseSlotRequest(r xml.TokenReader) (upload.Request, *refusal.Error) {
	tok, err := r.Token()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return upload.Request{}, badRequest("The slot request is not well-formed")
	}
	// XML forbids repeated attributes, but encoding/xml keeps the last one
	// silently: refuse rather than guess which the client meant.
	var fields slotFields
	for i, a := range start.Attr {
		for _, b := range start.Attr[:i] {
			if b.Name == a.Name {
				return upload.Request{}, badRequest("The attribute %s appears twice", a.Name.Local)
			}
		}
		fields.set(a.Name.Local, a.Value)
	}
	type purpose struct {
		name         xml.Name
		expireBefore string
	}
	var (
		purposes []purpose
		children slotFields // legacy fields
		field    string     // the legacy field being read, at depth 2
		text     []byte
	)
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			return upload.Request{}, badRequest("The slot request is not well-formed")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 {
				continue
			}
			if children.has(t.Name.Local) {
				field, text = t.Name.Local, text[:0]
			} else {
				p := purpose{name: t.Name}
				for _, a := range t.Attr {
					if a.Name.Local == "expire-before" {
						p.expireBefore = a.Value
					}
				}
				purposes = append(purposes, p)
			}
		case xml.CharData:
			if depth == 2 && field != "" {
				text = append(text, t...)
			}
		case xml.EndElement:
			if depth == 2 && field != "" {
				children.set(field, string(text))
				field = ""
			}
			depth--
		}
	}
	if start.Name.Space == nsUploadLegacy {
		fields = children
	}
	if fields.size == "" {
		return upload.Request{}, badRequest("The size is missing")
	}
	size, err := strconv.ParseInt(fields.size, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange && !strings.HasPrefix(fields.size, "-") {
			// A number too big for int64 is simply too large a file.
			size = math.MaxInt64
		} else {
			return upload.Request{}, badRequest("The size must be a whole number of bytes")
		}
	}
	out := upload.Request{Filename: fields.filename, Size: size, ContentType: strings.TrimSpace(fields.contentType)}
	for _, p := range purposes {
		if p.name.Space != nsPurpose {
			continue // other extensions: not ours to judge
		}
		if out.Purpose != "" {
			return upload.Request{}, badRequest("A slot request has at most one purpose")
		}
		out.Purpose = upload.Purpose(p.name.Local)
		if p.expireBefore != "" {
			t, err := time.Parse(time.RFC3339, p.expireBefore)
			if err != nil {
				return upload.Request{}, badRequest("expire-before must be an XEP-0082 date and time, such as 2026-09-01T12:00:00Z")
			}
			out.ExpireBefore = t
		}
	}
	return out, nil
}

// slotFields are a request's fields, as attributes (v0.3 and later) or
// child elements (legacy).
type slotFields struct{ filename, size, contentType string }

// has reports whether name is one of the fields.
func (f *slotFields) has(name string) bool { return f.field(name) != nil }

// set sets the field called name, if there is one; the last value wins.
func (f *slotFields) set(name, v string) {
	if p := f.field(name); p != nil {
		*p = v
	}
}

func (f *slotFields) field(name string) *string {
	switch name {
	case "filename":
		return &f.filename
	case "size":
		return &f.size
	case "content-type":
		return &f.contentType
	}
	return nil
}

// slotPayload is the <slot/> for a granted request, in the request's
// namespace, written directly: encoding/xml's reflection cost a fifth of a
// slot request. The disk store needs no PUT headers: its authorisation is
// in the URL.
func slotPayload(ns string, s upload.Slot) rawXML {
	var b bytes.Buffer
	if ns == nsUploadLegacy {
		b.WriteString(`<slot xmlns="` + nsUploadLegacy + `"><put>`)
		escape(&b, s.PutURL)
		b.WriteString(`</put><get>`)
		escape(&b, s.GetURL)
		b.WriteString(`</get></slot>`)
		return b.Bytes()
	}
	b.WriteString(`<slot xmlns="` + nsUpload + `"><put url="`)
	escape(&b, s.PutURL)
	b.WriteString(`"></put><get url="`)
	escape(&b, s.GetURL)
	b.WriteString(`"></get></slot>`)
	return b.Bytes()
}
