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

// online reports whether bare can take a message now. Without the presence
// privilege the component cannot know, so it hands every message to the
// server at once, whose own offline storage then keeps it. The same goes
// for a user the server has not reported on this connection if it does not
// report connected users when the component connects (ejabberd): the user
// may well be online, and a queue entry would wait for a presence that may
// not come for days.
func (r *Relay) online(bare string) bool {
	p := *r.priv.Load()
	if !p.presence {
		return true
	}
	online, known := r.presence.state(bare)
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
	r.presence.update(bare, from.String(), available)
	// Any presence the server reports, unavailable too (ejabberd's first
	// word of a user may be that), shows the account exists.
	if err := r.q.MarkSeen(ctx, bare); err != nil {
		r.log.Debug("recording a recipient as seen", "recipient", bare, "err", err)
	}
	if available {
		r.drain(ctx, bare, send)
	}
}

// drain delivers bare's queue, if anything is queued, in a goroutine; one
// drain per recipient at a time, so the order holds. A request during a
// drain makes it run once more.
func (r *Relay) drain(ctx context.Context, bare string, send wire.Sender) {
	r.mu.Lock()
	_, running := r.drains[bare]
	r.drains[bare] = running // a running drain goes again
	r.mu.Unlock()
	if running {
		return
	}
	go func() {
		// Asked here, not by the caller: the answer may wait for a
		// database, and presences ask on the read loop.
		if !r.q.Pending(bare) && !r.drainDone(bare, true) {
			return
		}
		var wait time.Duration
		for {
			n, err := r.q.Drain(ctx, bare, func(e offline.Entry) error {
				if !r.online(bare) {
					return errOffline
				}
				return r.deliver(ctx, send, e, true)
			})
			if n > 0 || (err != nil && !errors.Is(err, errOffline)) {
				r.log.Debug("drained queue", "recipient", bare, "delivered", n, "err", err)
			}
			if n > 0 {
				r.obs.RelayDrained(n)
			}
			if err != nil && !errors.Is(err, errOffline) && r.online(bare) {
				// The queue failed (its database down): again while the
				// recipient stays online, who would otherwise wait for
				// their next presence once it is back.
				wait = min(max(2*wait, drainRetryFirst), drainRetryMax)
				select {
				case <-ctx.Done():
				case <-time.After(wait):
					continue
				}
			}
			if !r.drainDone(bare, err == nil) {
				return
			}
		}
	}()
}

// A drain the queue failed is tried again after drainRetryFirst, doubling
// up to drainRetryMax: a queue whose database is back is drained within
// that.
const (
	drainRetryFirst = time.Second
	drainRetryMax   = 10 * time.Second
)

// drainDone ends a round of bare's drain: it reports whether to go again
// (another was asked for meanwhile, and this one went well), else forgets
// the drain.
func (r *Relay) drainDone(bare string, ok bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	again := r.drains[bare] && ok
	if r.drains[bare] = false; !again {
		delete(r.drains, bare)
	}
	return again
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
	p := *r.priv.Load()
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
	return send(ctx, b.Bytes(), wire.Written)
}
