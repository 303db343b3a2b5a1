package xmpp

import (
	"encoding/xml"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmlstream"

	"mediaslot/upload"
)

// slotRequest is a XEP-0363 <request/>. Version 0.3 and later put the
// fields in attributes; the legacy namespace (v0.2) uses child elements.
type slotRequest struct {
	XMLName     xml.Name
	Filename    string `xml:"filename,attr"`
	Size        string `xml:"size,attr"`
	ContentType string `xml:"content-type,attr"`

	LegacyFilename    string `xml:"filename"`
	LegacySize        string `xml:"size"`
	LegacyContentType string `xml:"content-type"`

	// XEP-0363 v1.2 upload purposes: one element in nsPurpose.
	Purposes []struct {
		XMLName      xml.Name
		ExpireBefore string `xml:"expire-before,attr"`
	} `xml:",any"`
}

// nsPurpose is the namespace of XEP-0363 v1.2 upload purposes.
const nsPurpose = "urn:xmpp:http:upload:purpose:0"

func badRequest(text string) *upload.Refusal {
	return &upload.Refusal{Reason: upload.BadRequest, Text: text}
}

// parseSlotRequest decodes a request element into an upload.Request (owner
// and domain left for the caller). It refuses what cannot be parsed with a
// bad-request Refusal; the upload policy judges the values.
func parseSlotRequest(r xml.TokenReader) (upload.Request, *upload.Refusal) {
	tok, err := r.Token()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return upload.Request{}, badRequest("The slot request is not well-formed")
	}
	// XML forbids repeated attributes, but encoding/xml keeps the last one
	// silently: refuse rather than guess which the client meant.
	seen := map[xml.Name]bool{}
	for _, a := range start.Attr {
		if seen[a.Name] {
			return upload.Request{}, badRequest("The attribute " + a.Name.Local + " appears twice")
		}
		seen[a.Name] = true
	}
	r = xmlstream.MultiReader(xmlstream.Token(start), r)
	var req slotRequest
	if err := xml.NewTokenDecoder(r).Decode(&req); err != nil {
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
			// A number too big for int64 is simply too large a file.
			size = math.MaxInt64
		} else {
			return upload.Request{}, badRequest("The size must be a whole number of bytes")
		}
	}
	out := upload.Request{Filename: req.Filename, Size: size, ContentType: strings.TrimSpace(req.ContentType)}
	for _, p := range req.Purposes {
		if p.XMLName.Space != nsPurpose {
			continue // other extensions: not ours to judge
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

type slotURL struct {
	URL string `xml:"url,attr"`
}

type slotResult struct {
	XMLName xml.Name `xml:"urn:xmpp:http:upload:0 slot"`
	Put     slotURL  `xml:"put"`
	Get     slotURL  `xml:"get"`
}

type legacySlotResult struct {
	XMLName xml.Name `xml:"urn:xmpp:http:upload slot"`
	Put     string   `xml:"put"`
	Get     string   `xml:"get"`
}

// slotPayload is the <slot/> for a granted request, in the request's namespace.
// The disk store needs no PUT headers: its authorisation is in the URL.
func slotPayload(ns string, s upload.Slot) any {
	if ns == nsUploadLegacy {
		return legacySlotResult{Put: s.PutURL, Get: s.GetURL}
	}
	return slotResult{Put: slotURL{URL: s.PutURL}, Get: slotURL{URL: s.GetURL}}
}

type fileTooLarge struct {
	XMLName xml.Name
	Max     int64 `xml:"max-file-size"`
}

// retry is XEP-0363's hint when a temporary refusal will pass.
type retry struct {
	XMLName xml.Name
	Stamp   string `xml:"stamp,attr"`
}

// refusalError maps a policy refusal to the XEP-0363 error clients expect.
func refusalError(ns string, ref *upload.Refusal) *stanzaError {
	switch ref.Reason {
	case upload.TooLarge:
		e := newError("modify", "not-acceptable", ref.Text)
		e.App = fileTooLarge{XMLName: xml.Name{Space: ns, Local: "file-too-large"}, Max: ref.MaxSize}
		return e
	case upload.Forbidden:
		return newError("auth", "forbidden", ref.Text)
	case upload.Unavailable:
		return newError("wait", "service-unavailable", ref.Text)
	case upload.OverQuota:
		e := newError("wait", "resource-constraint", ref.Text)
		if !ref.RetryAt.IsZero() {
			e.App = retry{XMLName: xml.Name{Space: ns, Local: "retry"}, Stamp: ref.RetryAt.UTC().Format(time.RFC3339)}
		}
		return e
	case upload.Unsupported:
		return newError("cancel", "feature-not-implemented", ref.Text)
	default:
		return newError("modify", "bad-request", ref.Text)
	}
}
