package xmpp

import (
	"encoding/xml"
	"errors"
	"io"
)

// The server ended the link on purpose; the log says so.
var (
	errStreamClosed = errors.New("server closed the stream")
	errConnClosed   = errors.New("server closed the connection (stopped or restarted?)")
)

// linkDownCause names a link the server ended for the log. mellium reports
// a </stream:stream> and EOF as io.EOF, and a connection closed without
// one (Prosody 0.12 does that when it stops) as an XML syntax error,
// "unexpected EOF", which reads like a protocol fault. Any other error is
// returned as it is.
func linkDownCause(err error) error {
	var se *xml.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return errStreamClosed
	case errors.As(err, &se) && se.Msg == "unexpected EOF":
		return errConnClosed
	}
	return err
}
