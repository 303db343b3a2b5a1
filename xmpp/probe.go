package xmpp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// ProbeError says which step of a Probe failed. Err is the dial error (a
// *net.OpError) for StepConnect, and for StepHandshake the server's stream
// error (a stream.Error such as not-authorized, host-unknown or conflict)
// when it sent one.
type ProbeError struct {
	Step ProbeStep
	Err  error
}

// ProbeStep is a step of Probe.
type ProbeStep int

// The steps of Probe.
const (
	StepConnect   ProbeStep = iota + 1 // TCP connection to the component port
	StepHandshake                      // XEP-0114 stream and handshake
)

func (e *ProbeError) Error() string {
	if e.Step == StepConnect {
		return "connect: " + e.Err.Error()
	}
	return "handshake: " + e.Err.Error()
}

func (e *ProbeError) Unwrap() error { return e.Err }

// Condition returns the stream error condition the server answered the
// handshake with ("not-authorized", "host-unknown", "conflict", …), or "".
func (e *ProbeError) Condition() string {
	var se stream.Error
	if errors.As(e.Err, &se) {
		return se.Err
	}
	return ""
}

// Probe connects to server, does the XEP-0114 handshake as componentJID
// with secret, and closes the stream again: what Component.Run does first,
// for `mediaslot serve --check-config`. A server that accepts the handshake
// delivers nothing to a component that closes at once, so probing a live
// server is harmless; a running mediaslot holding the same JID makes the
// server answer conflict (Prosody) or drop the older link (ejabberd).
// Errors are *ProbeError.
func Probe(ctx context.Context, server, componentJID, secret string, timeout time.Duration) error {
	addr, err := jid.Parse(componentJID)
	if err != nil {
		return &ProbeError{Step: StepHandshake, Err: fmt.Errorf("component JID %q: %w", componentJID, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return &ProbeError{Step: StepConnect, Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	sess, err := component.NewSession(ctx, addr, []byte(secret), conn)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("the server closed the connection during the handshake")
		} else if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %v", timeout)
		}
		return &ProbeError{Step: StepHandshake, Err: err}
	}
	// Close our stream and wait briefly for the server's, so that it sees a
	// clean close and does not log an error.
	_ = sess.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	r := sess.TokenReader()
	for {
		if _, err := r.Token(); err != nil {
			break
		}
	}
	r.Close()
	return nil
}
