package xmpp

import (
	"encoding/xml"
	"errors"
	"math"
	"strconv"
	"strings"

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
}

func badRequest(text string) *upload.Refusal {
	return &upload.Refusal{Reason: upload.BadRequest, Text: text}
}

// parseSlotRequest decodes a request element into an upload.Request (owner
// and domain left for the caller). It refuses what cannot be parsed with a
// bad-request Refusal; the upload policy judges the values.
func parseSlotRequest(r xml.TokenReader) (upload.Request, *upload.Refusal) {
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
	return upload.Request{Filename: req.Filename, Size: size, ContentType: strings.TrimSpace(req.ContentType)}, nil
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
	default:
		return newError("modify", "bad-request", ref.Text)
	}
}
