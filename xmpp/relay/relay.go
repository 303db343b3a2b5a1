// Package relay is mediaslot's offline media relay over the component
// link (docs/RELAY.md): it takes XEP-0033 messages to the component,
// checks them (sender and recipient domains, sizes, XEP-0231 data against
// its cid), delivers them at once to recipients who are online and queues
// them (package offline) for the others until their presence arrives. It
// follows the server's XEP-0356 privileges and forwarded presences, and
// deletes a queue entry once the link confirmed its delivery (wire.Written).
package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"mediaslot/offline"
	"mediaslot/refusal"
	"mediaslot/xmpp/wire"
)

const (
	nsAddress = "http://jabber.org/protocol/address" // XEP-0033; not in mellium
	nsBoB     = "urn:xmpp:bob"                       // XEP-0231; not in mellium
	// XEP-0091's legacy delay, which some clients still show; not in mellium.
	nsLegacyDelay = "jabber:x:delay"
)

// Queue is the durable store for recipients who are offline (package offline).
type Queue interface {
	// Enqueue stores the stanza for every recipient, or for none; it returns
	// once the stanza is on disk.
	Enqueue(ctx context.Context, sender string, recipients []string, msg []byte) error
	// Drain hands a recipient's entries to deliver, oldest first, deleting
	// each one only after deliver returned nil and a later confirm did.
	Drain(ctx context.Context, recipient string, deliver func(offline.Entry) error, confirm func() error) (int, error)
	// Pending reports whether recipient has queued entries.
	Pending(recipient string) bool
	// MarkSeen records that the server reported a presence of recipient,
	// so the account exists: its entries then live for the full TTL, not
	// the short one of recipients never seen. It must not wait for the disk.
	MarkSeen(ctx context.Context, recipient string) error
}

// Observer is told what the relay does, for metrics. Methods run on the
// read loop and on worker goroutines: they must be quick and safe for
// concurrent use.
type Observer interface {
	// RelayAccepted is called for each relay message accepted: delivered
	// recipients got it at once, queued ones will when they come back.
	RelayAccepted(delivered, queued int)
	// RelayDrained is called when queued messages were delivered to a
	// recipient who came back.
	RelayDrained(delivered int)
	// RelayRefused is called for each relay message refused, with the
	// stanza error condition sent back (forbidden, policy-violation, …).
	RelayRefused(condition string)
}

// nobody is the Observer of a Relay made without one.
type nobody struct{}

func (nobody) RelayAccepted(_, _ int) {}
func (nobody) RelayDrained(int)       {}
func (nobody) RelayRefused(string)    {}

// Policy bounds what the relay accepts.
type Policy struct {
	SenderDomains    []string // whose users may send through the relay
	RecipientDomains []string // whose users may receive through it
	MaxStanzaBytes   int      // size of the message as stored
	MaxBoBBytes      int      // decoded size of each XEP-0231 <data/>
	MaxRecipients    int
}

// Relay is the offline media relay: the component link hands it messages,
// presences and its senders' pings (see Handle).
type Relay struct {
	jid      string
	policy   Policy
	q        Queue
	previews Previewer // nil: no thumbnails made
	log      *slog.Logger
	obs      Observer
	presence offline.Presence
	// shared: presence is shared by the instances of a cluster, in a
	// database over the network: presences are handled off the read loop,
	// and a new connection of one instance forgets nothing (see LinkUp).
	shared bool
	priv   atomic.Pointer[privileges] // what the server granted on this connection
	// grantChecked is when (UnixNano) privileges last looked for a
	// sibling's record of them.
	grantChecked atomic.Int64

	mu     sync.Mutex
	drains map[string]bool // recipients being drained: whether to go again

	// Messages run off the read loop, as they wait for the disk. One worker
	// per shard keeps each sender's messages in order; shards run in
	// parallel so that many senders share fsyncs. The read loop never
	// waits for a shard: past the bounds below a message is refused (see
	// after), so a sender faster than the disk stalls nobody else.
	shards   []chan func(*shard)
	inFlight map[string]int // per sender (bare JID): stanzas on a shard
	inBytes  int            // of all senders' stanzas on a shard
}

// relayShards bounds how many senders' messages wait for the same commit:
// 256 gave a fifth more durable enqueues a second than 16 (BenchmarkRelayEnqueue).
const relayShards = 256

// What waits for the relay's shards, off the read loop. A sender gets
// SenderInFlight stanzas there (one commit each: a burst of that many is
// taken, a flood is refused); a shard holds several senders' worth, so one
// flooding sender leaves room for the others hashed to its shard; and
// relayInFlightBytes bounds the memory of all of them together (stanzas as
// read, see wire.Stanza.Size).
const (
	SenderInFlight     = 128
	relayShardDepth    = 4 * SenderInFlight
	relayInFlightBytes = 32 << 20
)

// New returns the relay of component componentJID, queueing in q. presence
// is where the relay keeps who is online when several instances share it
// (offline/pgqueue); nil keeps it in memory, for one instance. previews and
// obs may be nil.
func New(componentJID string, p Policy, q Queue, presence offline.Presence, previews Previewer, log *slog.Logger, obs Observer) *Relay {
	if obs == nil {
		obs = nobody{}
	}
	r := &Relay{jid: componentJID, policy: p, q: q, presence: presence, shared: presence != nil,
		previews: previews, log: log, obs: obs, drains: map[string]bool{}, inFlight: map[string]int{}}
	if !r.shared {
		r.presence = offline.NewMemPresence()
	}
	r.LinkUp()
	for range relayShards {
		c := make(chan func(*shard), relayShardDepth)
		r.shards = append(r.shards, c)
		go func() {
			sh := &shard{}
			for {
				var f func(*shard)
				var ok bool
				select {
				case f, ok = <-c:
				default:
					// Nothing else waits: see the commits under way
					// through before waiting for more.
					sh.settle()
					f, ok = <-c
				}
				if !ok {
					sh.settle()
					return
				}
				f(sh)
			}
		}()
	}
	return r
}

// LinkUp forgets what the last connection taught: the server advertises its
// privileges again on every connection, and a server that reports presences
// reports them all again (see forgetPresences). Presences in memory are
// forgotten on either server: ejabberd reports nothing on connect, and a
// user unknown to the relay gets messages at once (see online) rather than
// waiting in the queue for a presence that went by while the link was down.
// Shared presences stay: other instances' connections are up.
func (r *Relay) LinkUp() {
	r.priv.Store(&privileges{})
	if !r.shared {
		r.forgetPresences(context.Background())
	}
}

// grantCheck is how often an instance that has no advertisement of its own
// looks for the one a sibling recorded.
const grantCheck = time.Second

// privileges returns what the server granted: the advertisement this
// connection got or, with shared presences, the one a sibling recorded
// (ejabberd hands it to any one of the component's connections).
func (r *Relay) privileges(ctx context.Context) privileges {
	cur := r.priv.Load()
	p := *cur
	if p.server != "" || !r.shared {
		return p
	}
	now := time.Now().UnixNano()
	last := r.grantChecked.Load()
	if now-last < int64(grantCheck) || !r.grantChecked.CompareAndSwap(last, now) {
		return p
	}
	b, err := r.presence.Grant(ctx)
	if err != nil {
		r.log.Warn("reading the server's privileges a sibling recorded", "err", err)
		return p
	}
	if g, ok := decodePrivileges(b); ok {
		r.priv.CompareAndSwap(cur, &g) // unless this connection's own came meanwhile
		return g
	}
	return p
}

// forgetPresences forgets every presence.
func (r *Relay) forgetPresences(ctx context.Context) {
	if err := r.presence.Reset(ctx); err != nil {
		r.log.Warn("forgetting presences", "err", err)
	}
}

// Handle takes messages (relay messages, the server's privilege
// advertisement), presences, and pings from senders who may use the relay,
// answered once the sender's earlier messages are dealt with, refusals
// included: clients ping to learn that (client.SendMedia). Other pings,
// whose senders have no messages waiting, are left to the link.
func (r *Relay) Handle(ctx context.Context, st wire.Stanza, send wire.Sender) bool {
	switch st.Start.Name.Local {
	case "presence":
		r.handlePresence(ctx, st, send)
		return true
	case "message":
		r.handleMessage(ctx, st, send)
		return true
	}
	start, _, ok := st.Payload()
	if st.Attr("type") != "get" || !ok || start.Name != (xml.Name{Space: ping.NS, Local: "ping"}) {
		return false
	}
	reply := wire.Reply(st, r.jid)
	from, ref := r.checkSender(reply.To)
	if ref != nil {
		return false
	}
	if !r.after(from, st.Size, func(sh *shard) { sh.then(func() { wire.Answer(ctx, send, r.log, reply, nil, nil) }) }) {
		wire.Answer(ctx, send, r.log, reply, nil, errBusy.Stanza(""))
	}
	return true
}

// Disco adds XEP-0033 addressing to the component's features.
func (r *Relay) Disco(info *wire.Info) { info.AddFeatures(nsAddress) }

// handleMessage is called on the read loop for every message to the component.
func (r *Relay) handleMessage(ctx context.Context, st wire.Stanza, send wire.Sender) {
	typ := st.Attr("type")
	if typ == "error" {
		return
	}
	from := st.Attr("from")
	addressed := false
	for _, c := range st.Children() {
		switch {
		case (c.Start.Name.Space == nsPrivilege1 || c.Start.Name.Space == nsPrivilege2) && c.Start.Name.Local == "privilege":
			if !r.isServer(from) {
				// Another component, a remote domain or a user: Prosody
				// routes the namespace from any of them to us.
				r.log.Warn("ignored a privilege advertisement not from the server", "from", from)
				return
			}
			if p, ok := parsePrivileges(from, c.Reader()); ok {
				if r.shared && p.presence && p.reportsPresence() {
					// Prosody: one connection per component, which is
					// told every available user next.
					r.forgetPresences(ctx)
				}
				r.priv.Store(&p)
				if r.shared {
					if err := r.presence.SetGrant(ctx, p.encode()); err != nil {
						r.log.Warn("recording the server's privileges for the other instances", "err", err)
					}
				}
				r.log.Info("server privileges", "server", from, "namespace", p.ns, "message", p.message, "presence", p.presence)
			}
			return
		case c.Start.Name == xml.Name{Space: nsAddress, Local: "addresses"}:
			addressed = true
		}
	}
	if !addressed {
		return // not for the relay; nothing to answer
	}
	fromJID, ref := r.checkSender(from)
	if ref != nil {
		// At once: a remote server may send from any number of made-up
		// accounts, each of which would get its own share of the
		// stanzas waiting for the disk (see after).
		r.refuse(ctx, send, st, ref)
		return
	}
	queued := r.after(fromJID, st.Size, func(sh *shard) {
		if err := r.accept(ctx, sh, fromJID, st, send); err != nil {
			r.failed(ctx, send, st, err)
		}
	})
	if !queued {
		r.refuse(ctx, send, st, errBusy)
	}
}

// checkSender refuses a sender who may not use the relay, or returns their
// JID, parsed once for all that follows (PRECIS and IDNA make a parse cost
// more than reading it again).
func (r *Relay) checkSender(from string) (jid.JID, *refusal.Error) {
	j, err := jid.Parse(from)
	if err != nil {
		return j, refusal.New(refusal.BadRequest, "The sender address is not a JID")
	}
	if !domainIn(j.Domainpart(), r.policy.SenderDomains) {
		return j, refusal.New(refusal.Forbidden, "The relay is limited to accounts on %s", strings.Join(r.policy.SenderDomains, ", "))
	}
	return j, nil
}

// errBusy refuses a stanza that would make the read loop wait for a shard.
var errBusy = refusal.New(refusal.OverQuota, "Too many of your messages are waiting to be stored; try again later")

// isServer reports whether from is the XMPP server the component is
// attached to, the only entity whose XEP-0356 advertisement counts: a bare
// domain that is the component's parent domain (Prosody and ejabberd
// advertise from the virtual host: example.net for upload.example.net) or
// one of the relay's recipient domains, which the operator declares the
// server's own. Other components on the same server have other domains,
// and the server does not let them, nor remote domains, send from these.
func (r *Relay) isServer(from string) bool {
	if from == "" || strings.ContainsAny(from, "@/") {
		return false
	}
	_, parent, _ := strings.Cut(r.jid, ".")
	return strings.EqualFold(from, parent) || domainIn(from, r.policy.RecipientDomains)
}

// after runs f on from's shard, after the stanzas from sent before; what
// must follow their commits goes through the shard (shard.then, settle),
// and the stanza counts against the bounds below until then. It never
// blocks: it reports false, and
// runs nothing, if from (by bare JID) already has SenderInFlight
// stanzas waiting, if the shard is full, or if size more bytes would take
// all senders' waiting stanzas past relayInFlightBytes.
func (r *Relay) after(from jid.JID, size int, f func(*shard)) bool {
	sender := from.Bare().String()
	r.mu.Lock()
	if r.inFlight[sender] >= SenderInFlight || r.inBytes+size > relayInFlightBytes {
		r.mu.Unlock()
		return false
	}
	r.inFlight[sender]++
	r.inBytes += size
	r.mu.Unlock()
	h := fnv.New32a()
	h.Write([]byte(from.String()))
	select {
	case r.shards[h.Sum32()%relayShards] <- func(sh *shard) {
		f(sh)
		sh.then(func() { r.landed(sender, size) }) // counted until its commit
	}:
		return true
	default:
		r.landed(sender, size)
		return false
	}
}

// landed releases what after counted for a stanza.
func (r *Relay) landed(sender string, size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inBytes -= size
	if r.inFlight[sender]--; r.inFlight[sender] == 0 {
		delete(r.inFlight, sender)
	}
}

type recipient struct {
	kind string // to, cc or bcc
	bare string
}

// accept validates a relay message and delivers or queues it for every
// recipient. It stores or delivers nothing unless all checks pass.
func (r *Relay) accept(ctx context.Context, sh *shard, fromJID jid.JID, st wire.Stanza, send wire.Sender) error {
	typ := st.Attr("type")
	switch typ {
	case "":
		typ = "normal"
	case "chat", "normal":
	default:
		return refusal.New(refusal.BadRequest, "The relay carries chat and normal messages, not %s", typ)
	}
	var ad addressing
	var kids []wire.Child
	var err error
	for _, c := range st.Children() {
		switch {
		case c.Start.Name == xml.Name{Space: nsAddress, Local: "addresses"}:
			if ad, err = r.addresses(c); err != nil {
				return err
			}
			continue
		case c.Start.Name == xml.Name{Space: stanza.NSDelay, Local: "delay"}, c.Start.Name == xml.Name{Space: nsLegacyDelay, Local: "x"}:
			// Only the relay dates what it delivers late: a date
			// the sender wrote would show recipients a forged time.
			continue
		}
		if err := r.checkBoB(c); err != nil {
			return err
		}
		kids = append(kids, c)
	}
	// The stanza as read, at most what the relay stores: Size counts
	// 64 bytes a token, and a message past the limit is refused anyway.
	sizeHint := min(st.Size, r.policy.MaxStanzaBytes)
	stored, err := r.render(typ, st.Attr("id"), st.Start.Name.Space, kids, ad, sizeHint)
	if err != nil {
		return err
	}
	if len(stored) > r.policy.MaxStanzaBytes {
		return refusal.New(refusal.PolicyViolation, "The message is %d bytes; the relay accepts at most %d", len(stored), r.policy.MaxStanzaBytes)
	}
	if withThumb := r.withPreview(ctx, kids); len(withThumb) != len(kids) {
		// keep the preview only if the message still fits
		if b, err := r.render(typ, st.Attr("id"), st.Start.Name.Space, withThumb, ad, sizeHint); err == nil && len(b) <= r.policy.MaxStanzaBytes {
			stored = b
		}
	}

	// Queue for everyone who is offline or still has older messages queued
	// (order per recipient), deliver to the rest now.
	sender := fromJID.String()
	bares := ad.bares()
	if qs, ok := r.q.(starter); ok && !r.anyOnline(ctx, bares) {
		// Everyone is offline, so everyone gets it queued, whatever the
		// sender's earlier messages still committing: the shard goes on
		// to the sender's next stanza meanwhile (see shard).
		queue := bares
		wait, err := qs.EnqueueStart(ctx, sender, queue, stored)
		if err != nil {
			return r.notQueued(sender, err)
		}
		sh.later(func() {
			if err := wait(); err != nil {
				r.failed(ctx, send, st, r.notQueued(sender, err))
				return
			}
			r.obs.RelayAccepted(0, len(queue))
			for _, bare := range queue {
				if r.online(ctx, bare) {
					r.drain(ctx, bare, send)
				}
			}
			r.log.Debug("relayed message", "from", sender, "delivered", 0, "queued", len(queue), "bytes", len(stored))
		})
		return nil
	}
	// Delivered at once to whoever is online, unless they have older
	// messages queued: the sender's commits under way must be through.
	sh.settle()
	var queue, now []string
	for _, bare := range bares {
		if r.online(ctx, bare) && !r.q.Pending(bare) {
			now = append(now, bare)
		} else {
			queue = append(queue, bare)
		}
	}
	if len(queue) > 0 {
		if err := r.q.Enqueue(ctx, sender, queue, stored); err != nil {
			return r.notQueued(sender, err)
		}
	}
	requeued := 0
	for _, bare := range now {
		e := offline.Entry{Recipient: bare, Sender: sender, Stanza: stored}
		if err := r.deliver(ctx, send, e, false); err != nil {
			// The link dropped: keep it for the next connection.
			if err := r.q.Enqueue(ctx, sender, []string{bare}, stored); err != nil {
				return r.notQueued(sender, err)
			}
			requeued++
		}
	}
	r.obs.RelayAccepted(len(now)-requeued, len(queue)+requeued)
	for _, bare := range queue {
		if r.online(ctx, bare) {
			r.drain(ctx, bare, send)
		}
	}
	r.log.Debug("relayed message", "from", sender, "delivered", len(now), "queued", len(queue), "bytes", len(stored))
	return nil
}

// notQueued is the refusal of a message the queue did not store: a cap it
// would pass (wait/resource-constraint, naming the cap), or a queue that
// cannot store now, its database unreachable or its disk failing
// (wait/service-unavailable, as a slot whose record cannot be written).
// Either way nothing was stored, and the sender may send it again.
func (r *Relay) notQueued(sender string, err error) error {
	var lim *offline.LimitError
	if errors.As(err, &lim) {
		return refusal.New(refusal.OverQuota, "The relay cannot queue the message: %s; try again later", lim.Limit())
	}
	r.log.Error("queueing a relay message", "from", sender, "err", err)
	return errQueueDown
}

// errQueueDown refuses a message the queue failed to store.
var errQueueDown = refusal.New(refusal.Unavailable, "The relay cannot store messages right now; try again later")

// addressing is what an XEP-0033 <addresses/> says: whom to deliver to,
// and the addresses the recipients' clients act on (replyto, replyroom,
// noreply), which XEP-0033 says a relay passes on unchanged.
type addressing struct {
	recipients []recipient
	passOn     []wire.Child
}

// bares returns the recipients' bare JIDs, each once, in their order.
func (ad addressing) bares() []string {
	var out []string
	for _, rc := range ad.recipients {
		if !slices.Contains(out, rc.bare) { // at most relay.max_recipients
			out = append(out, rc.bare)
		}
	}
	return out
}

// addresses reads an XEP-0033 <addresses/>. An ofrom address from the
// sender is dropped: only the relay names the sender (see deliver).
func (r *Relay) addresses(c wire.Child) (addressing, error) {
	var out addressing
	for _, a := range (wire.Stanza{Tokens: c.Tokens[1:]}).Children() {
		if a.Start.Name != (xml.Name{Space: nsAddress, Local: "address"}) {
			continue
		}
		typ := wire.AttrOf(a.Start, "type")
		switch typ {
		case "to", "cc", "bcc":
		case "replyto", "replyroom", "noreply":
			if err := r.checkBoB(a); err != nil {
				return out, err
			}
			out.passOn = append(out.passOn, a)
			continue
		default:
			continue
		}
		if wire.AttrOf(a.Start, "delivered") == "true" {
			continue
		}
		addr := wire.AttrOf(a.Start, "jid")
		if addr == "" {
			return out, refusal.New(refusal.BadRequest, "Only JID addresses are supported, not %q", wire.AttrOf(a.Start, "uri"))
		}
		j, err := jid.Parse(addr)
		if err != nil || j.Localpart() == "" {
			return out, refusal.New(refusal.BadRequest, "The recipient %q is not a user's JID", addr)
		}
		if !domainIn(j.Domainpart(), r.policy.RecipientDomains) {
			return out, refusal.New(refusal.Forbidden, "The relay only delivers to accounts on %s, not to %s", strings.Join(r.policy.RecipientDomains, ", "), j.Bare())
		}
		out.recipients = append(out.recipients, recipient{kind: typ, bare: j.Bare().String()})
	}
	if len(out.recipients) == 0 {
		return out, refusal.New(refusal.BadRequest, "The message names no recipient")
	}
	if len(out.recipients) > r.policy.MaxRecipients {
		return out, refusal.New(refusal.PolicyViolation, "The message names %d recipients; the relay accepts at most %d", len(out.recipients), r.policy.MaxRecipients)
	}
	return out, nil
}

// bobElements returns every XEP-0231 <data/> in c, c itself or nested at
// any depth (inside a forwarded message, say): a client shows each one.
// One pass, whatever the nesting.
func bobElements(c wire.Child) []wire.Child {
	var out []wire.Child
	type opened struct{ at, depth int }
	var open []opened // <data/> elements not yet closed, innermost last
	depth := 0
	for i, tok := range c.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if t.Name == (xml.Name{Space: nsBoB, Local: "data"}) {
				open = append(open, opened{i, depth})
			}
		case xml.EndElement:
			if n := len(open); n > 0 && open[n-1].depth == depth {
				o := open[n-1]
				out = append(out, wire.Child{Start: c.Tokens[o.at].(xml.StartElement), Tokens: c.Tokens[o.at : i+1]})
				open = open[:n-1]
			}
			depth--
		}
	}
	return out
}

// checkBoB enforces XEP-0231 on every embedded thumbnail in c (see
// bobElements): valid base64, within the size limit, and a cid that is the
// SHA-1 of the data.
func (r *Relay) checkBoB(c wire.Child) error {
	for _, d := range bobElements(c) {
		if err := r.checkData(d); err != nil {
			return err
		}
	}
	return nil
}

func (r *Relay) checkData(c wire.Child) error {
	cid, text := bobData(c)
	if base64.StdEncoding.DecodedLen(len(text)) > r.policy.MaxBoBBytes+3 {
		return refusal.New(refusal.PolicyViolation, "The embedded data is larger than %d bytes", r.policy.MaxBoBBytes)
	}
	data := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(data, text)
	if err != nil {
		return refusal.New(refusal.NotAcceptable, "The embedded data is not valid base64")
	}
	if n > r.policy.MaxBoBBytes {
		return refusal.New(refusal.PolicyViolation, "The embedded data is %d bytes; the relay accepts at most %d", n, r.policy.MaxBoBBytes)
	}
	sum := sha1.Sum(data[:n])
	if want := "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"; !strings.EqualFold(cid, want) {
		return refusal.New(refusal.NotAcceptable, "The cid of the embedded data must be %s", want)
	}
	return nil
}

// bobData returns the cid attribute of a XEP-0231 <data/> element and its
// text without XML whitespace, which base64 allows between characters.
// The text is the element's own when it is one piece without whitespace,
// as clients send it: the caller must not change it.
func bobData(c wire.Child) (cid string, text []byte) {
	for _, a := range c.Start.Attr {
		if a.Name.Space == "" && a.Name.Local == "cid" {
			cid = a.Value
		}
	}
	var parts []xml.CharData // the element's own text, not its children's
	depth := 0
	for _, tok := range c.Tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 {
				parts = append(parts, t)
			}
		}
	}
	if len(parts) == 1 && !bytes.ContainsAny(parts[0], xmlSpace) {
		return cid, parts[0]
	}
	for _, t := range parts {
		text = slices.Grow(text, len(t))
		for _, b := range t {
			if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
				text = append(text, b)
			}
		}
	}
	return cid, text
}

// xmlSpace is XML's whitespace.
const xmlSpace = " \t\r\n"

// render builds the message as stored and delivered: type, id and payload
// of the original, and an XEP-0033 <addresses/> telling each recipient who
// else got it (to and cc, marked delivered; bcc never shown) and where to
// reply (replyto, replyroom, noreply as the sender wrote them). Payload
// elements in the stanza's own namespace (streamNS) are written without one,
// so they take the namespace of whatever stanza they are delivered in.
// sizeHint is about the size of the result: the buffer is made that big
// at once rather than doubled and copied as it grows.
func (r *Relay) render(typ, id, streamNS string, kids []wire.Child, ad addressing, sizeHint int) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(sizeHint)
	w := bufio.NewWriter(&b) // for the elements' encoders, flushed by each (see encodeTokens)
	b.WriteString(`<message type="`)
	wire.Escape(&b, typ)
	b.WriteString(`"`)
	if id != "" {
		b.WriteString(` id="`)
		wire.Escape(&b, id)
		b.WriteString(`"`)
	}
	b.WriteString(`>`)
	for _, c := range kids {
		if err := encodeTokens(w, c.Tokens, streamNS); err != nil {
			return nil, err
		}
	}
	b.WriteString(`<addresses xmlns="` + nsAddress + `">`)
	for _, rc := range ad.recipients {
		if rc.kind == "bcc" {
			continue
		}
		b.WriteString(`<address type="` + rc.kind + `" jid="`)
		wire.Escape(&b, rc.bare)
		b.WriteString(`" delivered="true"/>`)
	}
	for _, a := range ad.passOn {
		if err := encodeTokens(w, a.Tokens, nsAddress); err != nil {
			return nil, err
		}
	}
	b.WriteString(`</addresses></message>`)
	return b.Bytes(), nil
}

// refuse answers a relay message with an error, and logs and counts it.
func (r *Relay) refuse(ctx context.Context, send wire.Sender, st wire.Stanza, ref *refusal.Error) {
	r.log.Info("relay refused message", "from", st.Attr("from"), "reason", ref.Text)
	r.obs.RelayRefused(string(ref.Kind.Condition()))
	msg := struct {
		XMLName xml.Name             `xml:"message"`
		Type    string               `xml:"type,attr"`
		ID      string               `xml:"id,attr,omitempty"`
		From    string               `xml:"from,attr"`
		To      string               `xml:"to,attr"`
		Error   *refusal.StanzaError `xml:",omitempty"`
	}{Type: "error", ID: st.Attr("id"), From: r.jid, To: st.Attr("from"), Error: ref.Stanza("")}
	b, err := wire.Marshal(msg)
	if err == nil {
		err = send(ctx, b, wire.Batched)
	}
	if err != nil {
		r.log.Debug("error reply not sent", "to", msg.To, "err", err)
	}
}

func domainIn(d string, list []string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, d) })
}

// starter is a Queue that takes the next enqueue before the last one has
// committed (offline.BoltQueue): EnqueueStart returns once the stanza is
// queued for a commit, after every enqueue started before it, and wait
// returns what Enqueue would have.
type starter interface {
	EnqueueStart(ctx context.Context, sender string, recipients []string, stanza []byte) (wait func() error, err error)
}

// shard is the state of a shard's worker. A message for recipients who are
// all offline is started (starter) and what follows its commit (a refusal,
// or waking a drain) waits in pending, in order with what comes after: the
// answers to the sender's pings, and the release of its count in after.
// The worker goes on to the next stanza meanwhile, so that a sender's
// messages share commits instead of taking one each (docs/RELAY.md, "What
// accepting costs mediaslot"); anything that must see them stored (a
// delivery at once, a presence, a worker with nothing else to do) settles
// first. Nothing is answered before its commit.
type shard struct{ pending []func() }

// maxPending bounds what a shard runs ahead of its commits.
const maxPending = 64

// then runs f now, or after what is pending.
func (sh *shard) then(f func()) {
	if len(sh.pending) == 0 {
		f()
		return
	}
	sh.later(f)
}

// later runs f after what is pending, settling first if too much is.
func (sh *shard) later(f func()) {
	if len(sh.pending) >= maxPending {
		sh.settle()
	}
	sh.pending = append(sh.pending, f)
}

// settle runs what is pending, in order.
func (sh *shard) settle() {
	for len(sh.pending) > 0 {
		f := sh.pending[0]
		sh.pending = sh.pending[1:]
		f()
	}
}

// anyOnline reports whether one of bares is online.
func (r *Relay) anyOnline(ctx context.Context, bares []string) bool {
	return slices.ContainsFunc(bares, func(bare string) bool { return r.online(ctx, bare) })
}

// failed refuses a message accept did not take, with its refusal or, for
// other errors, an internal error.
func (r *Relay) failed(ctx context.Context, send wire.Sender, st wire.Stanza, err error) {
	var ref *refusal.Error
	if !errors.As(err, &ref) {
		r.log.Error("relaying message", "from", st.Attr("from"), "err", err)
		ref = refusal.New(refusal.Internal, "The relay could not store the message; try again later")
	}
	r.refuse(ctx, send, st, ref)
}
