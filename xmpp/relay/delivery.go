package relay

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"mellium.im/xmpp/forward"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"mediaslot/offline"
	"mediaslot/xmpp/wire"
)

// errOffline stops a drain when the recipient went away meanwhile.
var errOffline = errors.New("recipient went offline")

// onlineCheck is how often a drain asks shared presences whether its
// recipient is still online. Messages delivered after the recipient left
// are not lost: the server stores them offline, as any message to an
// offline user.
const onlineCheck = 200 * time.Millisecond

// online reports whether bare can take a message now. Without the presence
// privilege the component cannot know, so it hands every message to the
// server at once, whose own offline storage then keeps it. The same goes
// for a user the server has not reported on this connection if it does not
// report connected users when the component connects (ejabberd): the user
// may well be online, and a queue entry would wait for a presence that may
// not come for days.
//
// A presence store that cannot answer counts as offline: the message is
// queued, and delivered at the next presence or wake-up (see Wake).
func (r *Relay) online(ctx context.Context, bare string) bool {
	p := r.privileges(ctx)
	if !p.presence {
		return true
	}
	online, known, err := r.presence.State(ctx, bare)
	if err != nil {
		r.log.Warn("reading a presence", "recipient", bare, "err", err)
		return false
	}
	if !known && !p.reportsPresence() {
		return true
	}
	return online
}

// handlePresence tracks local users' availability and starts delivering
// their queue when they come online.
func (r *Relay) handlePresence(ctx context.Context, st wire.Stanza, send wire.Sender) {
	r.log.Debug("presence", "from", st.Attr("from"), "type", st.Attr("type"))
	from, err := jid.Parse(st.Attr("from"))
	if err != nil || from.Localpart() == "" || from.Resourcepart() == "" {
		return
	}
	var available bool
	switch st.Attr("type") {
	case "":
		available = true
	case "unavailable":
	default:
		return // subscriptions, probes and errors say nothing about availability
	}
	// Only recipient domains: nothing is queued for others, and a remote
	// server may send directed presence from as many made-up accounts and
	// resources as it likes, which would grow the presence table and the
	// seen set without bound.
	if !domainIn(from.Domainpart(), r.policy.RecipientDomains) {
		return
	}
	bare := from.Bare().String()
	// When it arrived, taken on the read loop: two instances may record a
	// user's presences in either order, and the later arrival must win.
	arrived := time.Now()
	update := func() {
		// Written before the queue is read, as an Enqueue is written
		// before the presence is read (accept): of a presence and a
		// message racing on two instances, one sees the other.
		if err := r.presence.Update(ctx, bare, from.String(), available, arrived); err != nil {
			r.log.Warn("recording a presence", "from", from.String(), "err", err)
		}
		// Any presence the server reports, unavailable too (ejabberd's
		// first word of a user may be that), shows the account exists.
		if err := r.q.MarkSeen(ctx, bare); err != nil {
			r.log.Debug("recording a recipient as seen", "recipient", bare, "err", err)
		}
		if available && r.q.Pending(bare) {
			r.drain(ctx, bare, send)
		}
	}
	if !r.shared {
		update() // in memory and a bbolt lookup: nothing waits
		return
	}
	// Round trips to the database: on the user's shard, off the read loop.
	// A presence finding the user's shard full is dropped (logged); the
	// wake-up it would have started comes from Wake.
	if !r.after(from.Bare(), st.Size, func(sh *shard) { sh.settle(); update() }) {
		r.log.Warn("dropped a presence: too many of the user's stanzas are waiting", "from", from.String())
	}
}

// drain delivers bare's queue in a goroutine; one drain per recipient at a
// time, so the order holds. A request during a drain makes it run once more.
func (r *Relay) drain(ctx context.Context, bare string, send wire.Sender) {
	r.mu.Lock()
	_, running := r.drains[bare]
	r.drains[bare] = running // a running drain goes again
	r.mu.Unlock()
	if running {
		return
	}
	go func() {
		for {
			var checked time.Time
			n, err := r.q.Drain(ctx, bare, func(e offline.Entry) error {
				// Whether the recipient left: a lookup in memory, a
				// round trip with shared presences, so then at most
				// once per onlineCheck.
				if !r.shared || time.Since(checked) > onlineCheck {
					if !r.online(ctx, bare) {
						return errOffline
					}
					checked = time.Now()
				}
				return r.deliver(ctx, send, e, true)
			}, func() error { return send(ctx, nil, wire.Written) })
			if n > 0 || (err != nil && !errors.Is(err, errOffline)) {
				r.log.Debug("drained queue", "recipient", bare, "delivered", n, "err", err)
			}
			if n > 0 {
				r.obs.RelayDrained(n)
			}
			r.mu.Lock()
			again := r.drains[bare] && err == nil
			if r.drains[bare] = false; !again {
				delete(r.drains, bare)
			}
			r.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// deliver sends one stored message to its recipient. With the message
// privilege it goes through the server as from the original sender (XEP-0356
// forwarding), so clients show it in the sender's conversation; without it,
// from the component with an XEP-0033 ofrom address naming the sender. A
// message from the queue carries an XEP-0203 delay stamped when the relay
// accepted it.
func (r *Relay) deliver(ctx context.Context, send wire.Sender, e offline.Entry, delayed bool) error {
	stored := e.Stanza
	end := bytes.IndexByte(stored, '>')
	if end < 0 || !bytes.HasSuffix(stored, []byte("</message>")) {
		return errors.New("relay: malformed stored message")
	}
	startTag := stored[:end] // `<message type=".." id=".."`
	inner := stored[end+1 : len(stored)-len("</message>")]
	var delay []byte
	if delayed {
		delay = []byte(`<delay xmlns="` + stanza.NSDelay + `" from="` + r.jid + `" stamp="` + e.Accepted.UTC().Format(time.RFC3339) + `"/>`)
	}
	var b bytes.Buffer
	senderJID, _ := jid.Parse(e.Sender)
	p := r.privileges(ctx)
	if p.message && strings.EqualFold(senderJID.Domainpart(), p.server) {
		b.WriteString(`<message from="` + r.jid + `" to="`)
		wire.Escape(&b, p.server)
		b.WriteString(`"><privilege xmlns="` + p.ns + `"><forwarded xmlns="` + forward.NS + `">`)
		b.WriteString(`<message xmlns="` + stanza.NSClient + `"` + string(startTag[len("<message"):]) + ` from="`)
		wire.Escape(&b, senderJID.Bare().String())
		b.WriteString(`" to="`)
		wire.Escape(&b, e.Recipient)
		b.WriteString(`">`)
		b.Write(inner)
		b.Write(delay)
		b.WriteString(`</message></forwarded></privilege></message>`)
	} else {
		b.Write(startTag)
		b.WriteString(` from="` + r.jid + `" to="`)
		wire.Escape(&b, e.Recipient)
		b.WriteString(`">`)
		// name the sender inside the addresses the relay rendered last
		open := []byte(`<addresses xmlns="` + nsAddress + `">`)
		if i := bytes.LastIndex(inner, open); i >= 0 {
			i += len(open)
			b.Write(inner[:i])
			b.WriteString(`<address type="ofrom" jid="`)
			wire.Escape(&b, e.Sender)
			b.WriteString(`"/>`)
			b.Write(inner[i:])
		} else {
			b.Write(inner)
		}
		b.Write(delay)
		b.WriteString(`</message>`)
	}
	// From the queue, deliveries are confirmed in groups by the drain;
	// a message handed on live is confirmed by itself before the relay
	// counts it delivered.
	mode := wire.Written
	if delayed {
		mode = wire.Unconfirmed
	}
	return send(ctx, b.Bytes(), mode)
}

// waker is a queue that can list the online recipients who have entries
// (offline/pgqueue, whose presences are shared).
type waker interface {
	Waiting(ctx context.Context, limit int) ([]string, error)
}

// wakeBatch bounds the recipients one Wake starts draining.
const wakeBatch = 1000

// Wake starts draining the queue of every online recipient who has
// entries, if the queue can list them: those whose drain died with the
// instance that ran it, or whose presence was dropped (handlePresence).
// Instances of a cluster run it in turn (cmd/mediaslot, under a lease); a
// recipient already being drained is not drained twice at once (Drain's
// lock). It reports how many drains it started.
func (r *Relay) Wake(ctx context.Context, send wire.Sender) (int, error) {
	w, ok := r.q.(waker)
	if !ok || !r.privileges(ctx).presence {
		return 0, nil
	}
	bares, err := w.Waiting(ctx, wakeBatch)
	for _, bare := range bares {
		r.drain(ctx, bare, send)
	}
	return len(bares), err
}

// Probe returns a stanza that comes back to the component, with id, only
// if the server still honours the component's message privilege: a
// privileged message from the server's domain to the component itself.
// ejabberd 23.01 forgets the grant of a component domain whenever any of
// its connections closes, and then drops the privileged deliveries of the
// connections left without a word; the server reads a link in order, so
// a probe that came back after a group of deliveries shows they went
// through (package xmpp sends it with the ping that confirms them, for
// several instances). nil without the message privilege: there is then
// nothing to prove.
func (r *Relay) Probe(ctx context.Context, id string) []byte {
	p := r.privileges(ctx)
	if !p.message {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(`<message from="` + r.jid + `" id="` + id + `" to="`)
	wire.Escape(&b, p.server)
	b.WriteString(`"><privilege xmlns="` + p.ns + `"><forwarded xmlns="` + forward.NS + `">`)
	b.WriteString(`<message xmlns="` + stanza.NSClient + `" type="normal" id="` + id + `" from="`)
	wire.Escape(&b, p.server)
	b.WriteString(`" to="` + r.jid + `"/></forwarded></privilege></message>`)
	return b.Bytes()
}
