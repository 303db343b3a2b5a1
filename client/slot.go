package client

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
)

// File describes a file for a slot request.
type File struct {
	Name        string
	Size        int64
	ContentType string // "" leaves the attribute out
}

// Header is one <header/> of a slot's <put/>, exactly as the service sent it.
type Header struct {
	Name  string
	Value string
}

// Slot is a granted XEP-0363 upload slot.
type Slot struct {
	PutURL  string
	GetURL  string
	Headers []Header // all of them, including any the XEP does not allow
}

// allowedHeaders are the only slot headers XEP-0363 lets a client send.
var allowedHeaders = []string{"Authorization", "Cookie", "Expires"}

// AllowedHeader reports whether XEP-0363 allows a slot header of this name
// (compared case-insensitively; v1.1 made header names case-insensitive).
func AllowedHeader(name string) bool {
	for _, a := range allowedHeaders {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// PutHeader is what the PUT carries from the slot: the allowed headers
// whose values hold no line breaks (which would split the request).
func (s Slot) PutHeader() http.Header {
	h := make(http.Header)
	for _, hd := range s.Headers {
		if AllowedHeader(hd.Name) && !strings.ContainsAny(hd.Value, "\r\n") {
			h.Add(hd.Name, hd.Value)
		}
	}
	return h
}

type slotRequestXML struct {
	XMLName xml.Name   `xml:"urn:xmpp:http:upload:0 request"`
	Attrs   []xml.Attr `xml:",any,attr"`
}

type slotResultXML struct {
	Put struct {
		URL     string `xml:"url,attr"`
		Headers []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:",chardata"`
		} `xml:"header"`
	} `xml:"put"`
	Get struct {
		URL string `xml:"url,attr"`
	} `xml:"get"`
}

// RequestSlot asks service for a slot for f. A refusal is a *StanzaError
// that matches ErrFileTooLarge, ErrForbidden, ErrQuota or ErrBadRequest.
func (c *Client) RequestSlot(ctx context.Context, service jid.JID, f File) (Slot, error) {
	attrs := []xml.Attr{
		{Name: xml.Name{Local: "filename"}, Value: f.Name},
		{Name: xml.Name{Local: "size"}, Value: strconv.FormatInt(f.Size, 10)},
	}
	if f.ContentType != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "content-type"}, Value: f.ContentType})
	}
	return c.RequestSlotRaw(ctx, service, "get", attrs...)
}

// RequestSlotRaw sends a <request/> with exactly the given attributes in an
// IQ of type iqType. Conformance checks use it to send malformed requests.
func (c *Client) RequestSlotRaw(ctx context.Context, service jid.JID, iqType string, attrs ...xml.Attr) (Slot, error) {
	payload, err := xml.Marshal(slotRequestXML{Attrs: attrs})
	if err != nil {
		return Slot{}, err
	}
	in, err := c.iq(ctx, service, iqType, payload)
	if err != nil {
		return Slot{}, err
	}
	if in.Slot == nil {
		return Slot{}, fmt.Errorf("%s answered the slot request without a <slot/>", service)
	}
	s := Slot{PutURL: strings.TrimSpace(in.Slot.Put.URL), GetURL: strings.TrimSpace(in.Slot.Get.URL)}
	for _, h := range in.Slot.Put.Headers {
		s.Headers = append(s.Headers, Header{Name: h.Name, Value: h.Value})
	}
	if s.PutURL == "" || s.GetURL == "" {
		return s, fmt.Errorf("%s sent a slot without a PUT or GET URL", service)
	}
	return s, nil
}
