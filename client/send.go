package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
)

// Delivery says where a media message goes.
type Delivery struct {
	To []jid.JID
	// Relay, if not zero, receives one message carrying all of To as
	// XEP-0033 addresses (mediaslot's offline relay); otherwise each of To
	// gets its own chat message.
	Relay jid.JID
}

// SendMedia sends the messages announcing m and returns once the server has
// dealt with them. Bounces come back as message errors with no promise of
// when; the server handles a session's stanzas in order, so a ping sent
// after the messages (to the relay, or to the user's server) is answered
// after any immediate bounce, and is the barrier waited for. Bounces that
// arrived by then are returned as *RecipientError values (joined); later
// ones (a remote server refusing) are not seen.
func (c *Client) SendMedia(ctx context.Context, m Media, d Delivery) error {
	type target struct {
		to    jid.JID
		addrs []jid.JID
		label string
		id    string
		errs  chan *StanzaError
	}
	var targets []*target
	barrier := c.jid.Domain()
	if d.Relay.String() != "" {
		targets = append(targets, &target{to: d.Relay, addrs: d.To, label: d.Relay.String()})
		barrier = d.Relay
	} else {
		for _, to := range d.To {
			targets = append(targets, &target{to: to, label: to.String()})
		}
	}
	defer func() {
		c.mu.Lock()
		for _, t := range targets {
			delete(c.pending, t.id)
		}
		c.mu.Unlock()
	}()
	for _, t := range targets {
		t.id = randomID()
		t.errs = make(chan *StanzaError, len(t.addrs)+1)
		c.mu.Lock()
		c.pending[t.id] = t.errs
		c.mu.Unlock()
		b, err := xml.Marshal(mediaMessage(t.id, t.to, t.addrs, m))
		if err != nil {
			return err
		}
		if err := c.sendRaw(ctx, b); err != nil {
			return fmt.Errorf("sending to %s: %w", t.label, err)
		}
	}
	if err := c.Ping(ctx, barrier); err != nil {
		return fmt.Errorf("waiting for %s to confirm the messages: %w", barrier, err)
	}
	var errs []error
	for _, t := range targets {
		for drained := false; !drained; {
			select {
			case se := <-t.errs:
				to := t.label
				if se.By != "" {
					to = se.By
				}
				errs = append(errs, &RecipientError{To: to, Err: se})
			default:
				drained = true
			}
		}
	}
	return errors.Join(errs...)
}

func randomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
