package xmpp

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"mediaslot/xmpp/wire"
)

// Several instances on ejabberd share one XEP-0356 grant, and ejabberd
// 23.01 keeps it by component domain: when any connection of the domain
// closes (an instance killed, or reconnecting), it forgets the grant for
// all of them until one connects again, and drops the privileged messages
// of the others in between without an error, while still answering their
// pings. A ping alone would then confirm deliveries that never reached
// anyone. So, for several instances, the group of deliveries a ping
// confirms is followed by a probe (relay.Relay.Probe): a privileged
// message to the component itself, which comes back only if the grant
// held when the server read it. Without it the deliveries stay queued,
// and the component has the grant renewed by reconnecting (regrant).

// probeGrace is how long after the ping's answer the probe may still come
// back: both are routed when the server reads them, one after the other,
// but may reach different instances (a sibling passes it on).
const probeGrace = 2 * time.Second

var errGrantLost = errors.New("the server dropped privileged deliveries: it no longer honours the component's XEP-0356 grant (ejabberd forgets it when any of the component's connections closes)")

// prober is a Handler that can prove the server still honours its
// privileges (the relay); nil without them.
type prober interface {
	Probe(ctx context.Context, id string) []byte
}

// probe returns the probe to send after a group of deliveries, its id and
// where its return is told; nothing for one instance, or without a grant.
func (c *Component) probe(ctx context.Context) (id string, back <-chan error, stanza []byte) {
	if c.forward == nil || c.prober == nil {
		return "", nil, nil
	}
	id, back = c.acks.add()
	if stanza = c.prober.Probe(ctx, id); stanza == nil {
		c.acks.drop(id)
		return "", nil, nil
	}
	return id, back, stanza
}

// probeBack waits, once the ping was answered, for the probe to come back;
// if it does not, the grant is gone: the deliveries count as failed and
// the component sets about getting it renewed.
func (c *Component) probeBack(ctx context.Context, back <-chan error) error {
	grace := time.NewTimer(probeGrace)
	defer grace.Stop()
	select {
	case err := <-back:
		return err
	case <-grace.C:
		c.regrant()
		return errGrantLost
	case <-ctx.Done():
		return ctx.Err()
	}
}

// regrant has the server grant the privileges again, once per loss: after
// a random pause (a sibling's reconnection may renew them meanwhile, and
// two instances should not take turns closing each other's grant), it
// probes again, and if the probe is still dropped it closes its link to
// reconnect at once: ejabberd grants a component's privileges whenever one
// of its connections comes up. The new link then wakes the drains that
// failed meanwhile (connectAndServe) instead of leaving them to the next
// round of the relay-wake lease.
func (c *Component) regrant() {
	if c.life == nil || !c.regranting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.regranting.Store(false)
		pause := time.NewTimer(probeGrace/4 + rand.N(probeGrace))
		defer pause.Stop()
		select {
		case <-c.life.Done():
			return
		case <-pause.C:
		}
		if err := c.send(c.life, nil, wire.Written); !errors.Is(err, errGrantLost) {
			return
		}
		c.log.Warn("the server drops the component's privileged messages; reconnecting to have its privileges granted again", "server", c.opt.Server)
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			c.redial.Store(true)
			c.rewake.Store(true)
			_ = conn.Conn.Close()
		}
	}()
}

// fromServer reports whether from is the server itself: the domain pings
// go to, or one of the relay's recipient domains (where probes come from).
// A client or a remote server cannot send from them.
func (c *Component) fromServer(from string) bool {
	if strings.EqualFold(from, c.ackTo) {
		return true
	}
	for _, d := range c.opt.Relay.RecipientDomains {
		if strings.EqualFold(from, d) {
			return true
		}
	}
	return false
}
