package wire

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"mediaslot/refusal"
)

// Sender writes one stanza, complete XML text, to the server. Replies and
// deliveries are built as text anyway; handing the bytes on spares encoding
// them again token by token (most of a relay delivery's cost). The mode
// says what a nil error promises.
type Sender func(ctx context.Context, stanza []byte, mode SendMode) error

// SendMode says when a Sender may return.
type SendMode int

const (
	// Batched: the stanza may wait, held back in memory, until the read
	// loop next reads, to go out in one write with others (the link's
	// streamConn). For replies: one lost in a crash is asked for again.
	Batched SendMode = iota
	// Written: the Sender returns once the server has read the stanza
	// (and everything sent before): the link pings the server right
	// after it and waits for the answer, as bytes in a socket buffer can
	// still be lost. For relay deliveries: a queue entry is deleted
	// after, and a message is requeued if it fails. Never from the read
	// loop, which is what reads the server's answer.
	Written
	// Unconfirmed: the stanza is written to the socket at once, and the
	// Sender returns without waiting for the server: a later Written
	// stanza confirms it too, since the server reads a stream in order
	// (a Written send of a nil stanza sends only the confirming ping).
	// For a drain's deliveries, confirmed offline.ConfirmEvery at a time.
	Unconfirmed
)

// Marshal encodes v for a Sender.
func Marshal(v any) ([]byte, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return b, nil
}

// RawXML is a payload already written as XML text, placed in a reply as is.
type RawXML []byte

// IQ is an outgoing IQ stanza. On a component stream every stanza needs from
// and to (ejabberd closes the stream otherwise), so both are always written.
type IQ struct {
	XMLName xml.Name             `xml:"iq"`
	ID      string               `xml:"id,attr"`
	Type    string               `xml:"type,attr"`
	From    string               `xml:"from,attr"`
	To      string               `xml:"to,attr"`
	Payload any                  `xml:",omitempty"`
	Error   *refusal.StanzaError `xml:",omitempty"`
}

// Reply returns the result IQ that answers the request st, from the
// entity it was sent to (component if st names none).
func Reply(st Stanza, component string) IQ {
	reply := IQ{ID: st.Attr("id"), Type: "result", From: st.Attr("to"), To: st.Attr("from")}
	if reply.From == "" {
		reply.From = component
	}
	return reply
}

// Answer sends reply with payload, or as an error if e is set. A reply
// that cannot be sent is logged and dropped: the link is down, and the
// client will time out and ask again.
func Answer(ctx context.Context, send Sender, log *slog.Logger, reply IQ, payload any, e *refusal.StanzaError) {
	var b []byte
	var err error
	if raw, ok := payload.(RawXML); ok && e == nil {
		b = result(reply, raw)
	} else {
		reply.Payload = payload
		if e != nil {
			reply.Type, reply.Error, reply.Payload = "error", e, nil
		}
		b, err = Marshal(reply)
	}
	if err == nil {
		err = send(ctx, b, Batched)
	}
	if err != nil {
		log.Debug("reply not sent", "to", reply.To, "err", err)
	}
}

// result writes a result IQ around payload, as Marshal would write an IQ
// with that payload, without reflection.
func result(reply IQ, payload RawXML) []byte {
	var b bytes.Buffer
	b.Grow(len(payload) + 128)
	b.WriteString(`<iq id="`)
	Escape(&b, reply.ID)
	b.WriteString(`" type="result" from="`)
	Escape(&b, reply.From)
	b.WriteString(`" to="`)
	Escape(&b, reply.To)
	b.WriteString(`">`)
	b.Write(payload)
	b.WriteString(`</iq>`)
	return b.Bytes()
}

// Escape writes s escaped for use in XML text or a quoted attribute value
// as xml.EscapeText does, byte for byte, without its rune-by-rune writes:
// markup characters become references, and characters XML cannot carry
// (invalid UTF-8, most control characters) become U+FFFD. Runs of plain
// text, such as a whole base64 thumbnail, are copied in one write.
func Escape(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		width := 1
		esc := escapes[c]
		switch {
		case esc == "" && c >= 0x20 && c < 0x80:
			i++
			continue
		case esc != "":
		case c < 0x20:
			esc = "\uFFFD"
		default:
			var r rune
			r, width = utf8.DecodeRuneInString(s[i:])
			if (r != utf8.RuneError || width > 1) && xmlChar(r) {
				i += width
				continue
			}
			esc = "\uFFFD"
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		i += width
		last = i
	}
	b.WriteString(s[last:])
}

// escapes are the references Escape writes for ASCII characters; other
// control characters become U+FFFD.
var escapes = [256]string{
	'&': "&amp;", '<': "&lt;", '>': "&gt;", '"': "&#34;", '\'': "&#39;",
	'\t': "&#x9;", '\n': "&#xA;", '\r': "&#xD;",
}

// xmlChar reports whether r, at least U+0080, is a character XML 1.0
// allows.
func xmlChar(r rune) bool {
	return r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
