package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Namespaces used on the wire.
const (
	nsSASL       = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	// NSUpload is the XEP-0363 namespace this client speaks.
	NSUpload = "urn:xmpp:http:upload:0"
	// NSAddress is XEP-0033 Extended Stanza Addressing; an entity that
	// advertises it relays one message to many addressees.
	NSAddress = "http://jabber.org/protocol/address"
)

// rawReader hands out a marshalled element as raw tokens: namespaces stay
// plain xmlns attributes, which the stream encoder writes back verbatim.
type rawReader struct{ d *xml.Decoder }

func (r rawReader) Token() (xml.Token, error) { return r.d.RawToken() }

// send marshals v (a top-level stanza without a namespace, which the stream
// makes jabber:client) and writes it.
func (c *Client) send(ctx context.Context, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %T: %w", v, err)
	}
	return c.sendRaw(ctx, b)
}

func (c *Client) sendRaw(ctx context.Context, stanza []byte) error {
	ctx = requestContext(ctx)
	if err := c.sess.Send(ctx, rawReader{xml.NewDecoder(bytes.NewReader(stanza))}); err != nil {
		return timeoutError(ctx, err)
	}
	return nil
}

// requestContext bounds a request by iqTimeout, or by ctx's own deadline.
// Its cancel runs only when the deadline passes, never right after the
// request: mellium v0.22 watches the context of each write in a goroutine,
// and a context cancelled just as the write returns can make that goroutine
// set a past write deadline that fails another goroutine's write.
func requestContext(ctx context.Context) context.Context {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(iqTimeout)
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	time.AfterFunc(time.Until(d), cancel)
	return ctx
}

// timeoutError marks err as ErrTimeout when the context ran out.
func timeoutError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}

// iqOut is an IQ request; Inner is its payload, already marshalled, so that
// callers (the conformance checks) can send payloads no well-behaved client
// would produce.
type iqOut struct {
	XMLName xml.Name `xml:"iq"`
	Type    string   `xml:"type,attr"`
	To      string   `xml:"to,attr"`
	Inner   []byte   `xml:",innerxml"`
}

// iqIn is every IQ response this client understands; the payload that came
// back is the non-nil field.
type iqIn struct {
	Type       string         `xml:"type,attr"`
	Error      *errorXML      `xml:"error"`
	DiscoInfo  *discoInfoXML  `xml:"http://jabber.org/protocol/disco#info query"`
	DiscoItems *discoItemsXML `xml:"http://jabber.org/protocol/disco#items query"`
	Slot       *slotResultXML `xml:"urn:xmpp:http:upload:0 slot"`
}

// iq sends an IQ of type typ to to with the marshalled payload and waits for
// the answer. An error reply is returned as *StanzaError.
func (c *Client) iq(ctx context.Context, to jid.JID, typ string, payload []byte) (iqIn, error) {
	ctx = requestContext(ctx)
	b, err := xml.Marshal(iqOut{Type: typ, To: to.String(), Inner: payload})
	if err != nil {
		return iqIn{}, err
	}
	resp, err := c.sess.SendIQ(ctx, rawReader{xml.NewDecoder(bytes.NewReader(b))})
	if err != nil {
		return iqIn{}, timeoutError(ctx, fmt.Errorf("IQ to %s: %w", to, err))
	}
	defer resp.Close()
	var in iqIn
	if err := xml.NewTokenDecoder(resp).Decode(&in); err != nil {
		return iqIn{}, fmt.Errorf("reading the answer of %s: %w", to, err)
	}
	if in.Type == "error" {
		if in.Error == nil {
			return in, &StanzaError{Type: "cancel", Condition: "undefined-condition", By: to.String()}
		}
		se := in.Error.stanzaError()
		se.By = to.String()
		return in, se
	}
	return in, nil
}

// Ping sends a XEP-0199 ping to to and waits for any answer; an error reply
// (an entity without ping support) still proves the round trip.
func (c *Client) Ping(ctx context.Context, to jid.JID) error {
	_, err := c.iq(ctx, to, "get", []byte(`<ping xmlns='`+nsPing+`'/>`))
	var se *StanzaError
	if errors.As(err, &se) {
		return nil
	}
	return err
}

// errorXML is a stanza <error/> with the XEP-0363 application conditions.
type errorXML struct {
	Type       string `xml:"type,attr"`
	Conditions []struct {
		XMLName xml.Name
	} `xml:",any"`
	Text         []string `xml:"urn:ietf:params:xml:ns:xmpp-stanzas text"`
	FileTooLarge *struct {
		Max string `xml:"max-file-size"`
	} `xml:"urn:xmpp:http:upload:0 file-too-large"`
	Retry *struct {
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:http:upload:0 retry"`
}

func (e *errorXML) stanzaError() *StanzaError {
	se := &StanzaError{Type: e.Type, Text: strings.TrimSpace(strings.Join(e.Text, " "))}
	for _, c := range e.Conditions {
		if c.XMLName.Space == nsStanzas && c.XMLName.Local != "text" {
			se.Condition = c.XMLName.Local
			break
		}
	}
	if e.FileTooLarge != nil {
		se.FileTooLarge = true
		se.MaxFileSize = parseSize(e.FileTooLarge.Max)
	}
	if e.Retry != nil {
		se.RetryStamp = e.Retry.Stamp
	}
	return se
}
