// Package xmpp is mediaslot's XEP-0114 component link to the XMPP server:
// it keeps the link up (reconnecting with backoff), reads the stream
// itself, and dispatches each stanza to the protocols it serves, XEP-0363
// slot requests (package httpupload) and the relay (package relay), through
// the Handler interface. It answers service discovery (XEP-0030, with what
// the handlers add), ping (XEP-0199) and version (XEP-0092) itself, and
// confirms written stanzas with a ping of its own (see acks). Probe checks
// the handshake for `mediaslot serve --check-config`.
package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mediaslot/offline"
	"mediaslot/xmpp/httpupload"
	"mediaslot/xmpp/relay"
	"mediaslot/xmpp/wire"

	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
)

// Options configure a Component.
type Options struct {
	JID          string        // the component's domain, e.g. upload.example.net
	Server       string        // host:port of the server's component port
	Secret       string        // XEP-0114 shared secret
	ReconnectMax time.Duration // cap of the exponential backoff between attempts
	Version      string        // reported by XEP-0092
	Slots        httpupload.Slots
	// SlotWorkers > 0 answers slot requests off the read loop, at most
	// this many at once (for slot records in a database over the
	// network); 0 answers them on it (bbolt: Issue does not wait).
	SlotWorkers int
	// Queue enables the offline media relay (XEP-0033 messages to the
	// component); nil leaves it off.
	Queue relay.Queue
	Relay relay.Policy
	// Presence, for several instances, is where the relay keeps who is
	// online, shared by them (offline/pgqueue); nil keeps it in memory.
	Presence offline.Presence
	// Previews, if set, makes thumbnails for relayed messages about images
	// uploaded here that carry none.
	Previews relay.Previewer
	Logger   *slog.Logger
	// Siblings, for several instances on one component JID, passes the
	// server's answers to the pings that confirm deliveries on to the
	// instance that sent them: ejabberd hands them to any connection.
	// Their notes come back through Component.Acked. nil for one instance.
	Siblings Siblings
	// Observer is told of the link, slots and relay messages, for
	// metrics; nil tells nobody.
	Observer Observer
}

// Siblings carries notes to the other instances of a cluster
// (internal/siblings).
type Siblings interface {
	Self() string // this instance's name: lowercase letters and digits
	Send(ctx context.Context, to, note string) error
}

// forwardQueue bounds the answers waiting to go to a sibling; past it
// they are dropped, and the sibling's delivery goes again after its wait.
const forwardQueue = 1024

// Component keeps the XEP-0114 link to the XMPP server up and answers what
// arrives on it.
type Component struct {
	opt       Options
	addr      jid.JID
	log       *slog.Logger
	h         *dispatcher
	connected atomic.Bool
	// handling is when the read loop took the stanza it is handling
	// (UnixNano), 0 while it reads.
	handling atomic.Int64
	mu       sync.Mutex
	conn     *streamConn // of the live session, nil between connections
	acks     acks
	// ackTo is where the IQs that confirm deliveries go: a domain the
	// server answers itself, without asking another server.
	ackTo string
	// forward holds siblings' answers (instance, id) until sent on.
	forward chan [2]string
	// prober, for several instances, proves the server's grant (grant.go).
	prober prober
	// life is Run's context; regranting is set while regrant runs,
	// redial has Run reconnect without waiting, and rewake has the next
	// link wake the relay's drains.
	life       context.Context
	regranting atomic.Bool
	redial     atomic.Bool
	rewake     atomic.Bool
}

// New checks the options and returns a Component; Run connects it.
func New(opt Options) (*Component, error) {
	addr, err := jid.Parse(opt.JID)
	if err != nil || addr.Localpart() != "" || addr.Resourcepart() != "" {
		return nil, fmt.Errorf("component JID %q must be a bare domain", opt.JID)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.ReconnectMax <= 0 {
		opt.ReconnectMax = 2 * time.Second
	}
	h := newDispatcher(addr.String(), opt)
	// The relay delivers to users of its recipient domains through the
	// server: they are the server's own. Without the relay nothing waits
	// for a confirmation; the component's parent domain stands in.
	ackTo := addr.String()
	if _, parent, ok := strings.Cut(ackTo, "."); ok {
		ackTo = parent
	}
	if len(opt.Relay.RecipientDomains) > 0 {
		ackTo = opt.Relay.RecipientDomains[0]
	}
	c := &Component{opt: opt, addr: addr, log: opt.Logger, h: h, ackTo: ackTo}
	if opt.Siblings != nil {
		c.acks.self = opt.Siblings.Self()
		c.forward = make(chan [2]string, forwardQueue)
		for _, h := range h.handlers {
			if p, ok := h.(prober); ok {
				c.prober = p
			}
		}
	}
	return c, nil
}

// Wake has the relay drain the queues of online recipients who have
// entries, if its queue can list them (see relay.Relay.Wake): for one
// instance of a cluster at a time, under a lease. It does nothing while
// the link is down.
func (c *Component) Wake(ctx context.Context) (int, error) {
	if !c.Connected() {
		return 0, nil
	}
	for _, h := range c.h.handlers {
		if r, ok := h.(*relay.Relay); ok {
			return r.Wake(ctx, c.send)
		}
	}
	return 0, nil
}

// Acked takes the server's answer to one of this instance's confirming
// pings that reached a sibling (a note of Options.Siblings).
func (c *Component) Acked(id string) { c.acks.answered(id) }

// forwardAcks sends siblings' answers on, off the read loop, until ctx ends.
func (c *Component) forwardAcks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-c.forward:
			sctx, cancel := context.WithTimeout(ctx, ackTimeout)
			if err := c.opt.Siblings.Send(sctx, f[0], f[1]); err != nil {
				c.log.Warn("passing a delivery's confirmation to a sibling", "sibling", f[0], "err", err)
			}
			cancel()
		}
	}
}

// newDispatcher returns the dispatch of component componentJID: slot
// requests, then the relay if opt has a queue.
func newDispatcher(componentJID string, opt Options) *dispatcher {
	h := &dispatcher{jid: componentJID, version: opt.Version, log: opt.Logger,
		handlers: []Handler{httpupload.New(componentJID, opt.Slots, opt.SlotWorkers, opt.Logger, opt.Observer)}}
	if opt.Queue != nil {
		h.handlers = append(h.handlers, relay.New(componentJID, opt.Relay, opt.Queue, opt.Presence, opt.Previews, opt.Logger, opt.Observer))
	}
	return h
}

// Connected reports whether the link to the server is up.
func (c *Component) Connected() bool { return c.connected.Load() }

// Stalled reports how long the read loop has been handling one stanza, 0
// if it is reading. Every stanza for the component waits behind it: a
// second or more means clients' requests are waiting (a disk that does
// not answer, say), which readiness shows past a few seconds.
func (c *Component) Stalled() time.Duration {
	t := c.handling.Load()
	if t == 0 {
		return 0
	}
	return time.Since(time.Unix(0, t))
}

const (
	minBackoff  = 250 * time.Millisecond
	dialTimeout = 10 * time.Second
	// stableAfter is how long a link must have lasted for the backoff to
	// start again from minBackoff.
	stableAfter = 10 * time.Second
)

// Run connects to the server and serves the link until ctx ends,
// reconnecting with capped exponential backoff whenever it drops or cannot
// be made (the server may start after mediaslot, or restart). It returns
// ctx.Err() after closing the stream.
func (c *Component) Run(ctx context.Context) error {
	c.life = ctx
	if c.forward != nil {
		go c.forwardAcks(ctx)
	}
	backoff := minBackoff
	for {
		began := time.Now()
		err := c.connectAndServe(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(began) > stableAfter {
			backoff = minBackoff
		}
		wait := backoff
		if c.redial.Swap(false) {
			wait = 0 // closed to have the grant renewed (grant.go)
		} else {
			backoff = min(backoff*2, c.opt.ReconnectMax)
		}
		c.log.Warn("component link down; reconnecting", "server", c.opt.Server, "err", linkDownCause(err), "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *Component) connectAndServe(ctx context.Context) error {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.opt.Server)
	if err != nil {
		return err
	}
	defer conn.Close()
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	sc := newStreamConn(conn)
	sess, err := component.NewSession(hctx, c.addr, []byte(c.opt.Secret), sc)
	cancel()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	for _, h := range c.h.handlers {
		if w, ok := h.(linkWatcher); ok {
			w.LinkUp()
		}
	}
	c.setConn(sc)
	defer c.setConn(nil)
	c.log.Info("component connected", "jid", c.addr.String(), "server", c.opt.Server)
	if c.rewake.Swap(false) {
		go func() {
			if _, err := c.Wake(ctx); err != nil {
				c.log.Warn("waking the relay's drains after the grant's renewal", "err", err)
			}
		}()
	}

	// Closing the stream and the connection is what ends the read loop on shutdown.
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-ctx.Done():
			_ = sess.Close()
			_ = conn.Close()
		case <-served:
		}
	}()
	return c.serve(ctx, sess)
}

func (c *Component) setConn(conn *streamConn) {
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	if conn == nil {
		c.acks.lost()
	}
	c.connected.Store(conn != nil)
	if c.opt.Observer != nil {
		c.opt.Observer.LinkChanged(conn != nil)
	}
}

// errLinkDown is returned by send when there is no live session.
var errLinkDown = errors.New("component link is down")

// send writes one stanza, as text, on the live session's connection.
// mellium's Session.Send would encode it again token by token, which cost
// more than the rest of a slot request. Writes are bounded by the
// connection's write deadline, not by ctx. A written stanza is followed by
// a ping to the server, and send returns once the server answered it (see
// acks): the server has then read the stanza.
func (c *Component) send(ctx context.Context, stanza []byte, mode wire.SendMode) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return errLinkDown
	}
	switch mode {
	case wire.Batched:
		return conn.send(stanza)
	case wire.Unconfirmed:
		return conn.sendWritten(stanza)
	}
	id, answered := c.acks.add()
	defer c.acks.drop(id)
	out := [][]byte{stanza}
	probeID, probed, probe := c.probe(ctx)
	if probe != nil {
		defer c.acks.drop(probeID)
		out = append(out, probe)
	}
	var ack bytes.Buffer
	ack.WriteString(`<iq type="get" id="` + id + `" from="`)
	wire.Escape(&ack, c.addr.String())
	ack.WriteString(`" to="`)
	wire.Escape(&ack, c.ackTo)
	ack.WriteString(`"><ping xmlns="` + ping.NS + `"/></iq>`)
	if err := conn.sendWritten(append(out, ack.Bytes())...); err != nil {
		return err
	}
	timeout := time.NewTimer(ackTimeout)
	defer timeout.Stop()
	select {
	case err := <-answered:
		if err != nil || probed == nil {
			return err
		}
	case <-timeout.C:
		return errNoAck
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.probeBack(ctx, probed)
}

// serve is the read loop. mellium's Session.Serve answers every IQ its
// handler has not answered before returning with a service-unavailable error
// lacking a from address; slot requests are answered later from a goroutine,
// so the loop reads the stream itself and owns every reply.
func (c *Component) serve(ctx context.Context, sess *xmpp.Session) error {
	r := sess.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace keepalives
		}
		st, err := wire.Read(r, start)
		if err != nil {
			return err
		}
		if c.isAck(st) {
			continue
		}
		c.handling.Store(time.Now().UnixNano())
		c.h.handle(ctx, st, c.send)
		c.handling.Store(0)
	}
}

// isAck reports whether st is the server's answer to a delivery's ping
// (or probe, grant.go), and tells its waiter, here or, through Siblings, in the instance that
// sent it. Only the server's answer counts: a client that guessed an id
// could otherwise confirm a delivery the server never read.
func (c *Component) isAck(st wire.Stanza) bool {
	typ := st.Attr("type")
	switch {
	case st.Start.Name.Local == "iq" && (typ == "result" || typ == "error"):
	case st.Start.Name.Local == "message" && typ != "error" && c.forward != nil:
		// a probe come back (grant.go); a bounced one proves nothing
	default:
		return false
	}
	if !c.fromServer(st.Attr("from")) {
		return false
	}
	id := st.Attr("id")
	if c.acks.answered(id) {
		return true
	}
	inst, ok := owner(id)
	if !ok || c.forward == nil || inst == c.acks.self {
		return false
	}
	select {
	case c.forward <- [2]string{inst, id}:
	default: // the sibling's delivery goes again after its wait
	}
	return true
}
