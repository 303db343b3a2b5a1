package xmpp

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/offline"
	"mediaslot/refusal"
)

// The offline media relay: a client sends one message to the component with
// XEP-0033 addresses; the component delivers it to each recipient who is
// online at once and keeps it in its own durable queue for the others until
// their available presence arrives. See docs/RELAY.md.

const (
	nsAddress = "http://jabber.org/protocol/address"
	nsBoB     = "urn:xmpp:bob"
	nsDelay   = "urn:xmpp:delay"
	// XEP-0091's legacy delay, which some clients still show.
	nsLegacyDelay = "jabber:x:delay"
	nsForward     = "urn:xmpp:forward:0"
	nsClient      = "jabber:client"
)

// Queue is the durable store for recipients who are offline (package offline).
type Queue interface {
	// Enqueue stores the stanza for every recipient, or for none; it returns
	// once the stanza is on disk.
	Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error
	// Drain hands a recipient's entries to deliver, oldest first, deleting
	// each one only after deliver returned nil.
	Drain(ctx context.Context, recipient string, deliver func(offline.Entry) error) (int, error)
	// Pending reports whether recipient has queued entries.
	Pending(recipient string) bool
	// MarkSeen records that the server reported a presence of recipient,
	// so the account exists: its entries then live for the full TTL, not
	// the short one of recipients never seen. It must not wait for the disk.
	MarkSeen(ctx context.Context, recipient string) error
}

// RelayPolicy bounds what the relay accepts.
type RelayPolicy struct {
	SenderDomains    []string // whose users may send through the relay
	RecipientDomains []string // whose users may receive through it
	MaxStanzaBytes   int      // size of the message as stored
	MaxBoBBytes      int      // decoded size of each XEP-0231 <data/>
	MaxRecipients    int
}

type relay struct {
	jid      string
	policy   RelayPolicy
	q        Queue
	previews Previewer // nil: no thumbnails made
	log      *slog.Logger
	obs      Observer // nil: nobody
	now      func() time.Time
	presence *presenceTable

	mu     sync.Mutex
	priv   privileges
	drains map[string]*drainState // recipients being drained

	// Messages run off the read loop, as they wait for the disk. One worker
	// per shard keeps each sender's messages in order; shards run in
	// parallel so that many senders share fsyncs. The read loop never
	// waits for a shard: past the bounds below a message is refused (see
	// after), so a sender faster than the disk stalls nobody else.
	shards   []chan func()
	inFlight map[string]int // per sender (bare JID): stanzas on a shard
	inBytes  int            // of all senders' stanzas on a shard
}

type drainState struct{ again bool }

// relayShards bounds how many senders' messages wait for the same commit:
// 256 gave a fifth more durable enqueues a second than 16 (BenchmarkRelayEnqueue).
const relayShards = 256

// What waits for the relay's shards, off the read loop. A sender gets
// relaySenderInFlight stanzas there (one commit each: a burst of that many
// is taken, a flood is refused); a shard holds several senders' worth, so
// one flooding sender leaves room for the others hashed to its shard; and
// relayInFlightBytes bounds the memory of all of them together (stanzas
// as read, see stanza.size).
const (
	relaySenderInFlight = 128
	relayShardDepth     = 4 * relaySenderInFlight
	relayInFlightBytes  = 32 << 20
)

func newRelay(componentJID string, p RelayPolicy, q Queue, log *slog.Logger) *relay {
	r := &relay{jid: componentJID, policy: p, q: q, log: log, now: time.Now, presence: newPresenceTable(),
		drains: map[string]*drainState{}, inFlight: map[string]int{}}
	for range relayShards {
		c := make(chan func(), relayShardDepth)
		r.shards = append(r.shards, c)
		go func() {
			for f := range c {
				f()
			}
		}()
	}
	return r
}

// linkUp forgets what the last connection taught: the server advertises its
// privileges and current presences again on every connection.
func (r *relay) linkUp() {
	r.mu.Lock()
	r.priv = privileges{}
	r.mu.Unlock()
	r.presence.reset()
}

func (r *relay) privileges() privileges {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.priv
}

// handleMessage is called on the read loop for every message to the component.
func (r *relay) handleMessage(ctx context.Context, st stanza, send sender) {
	typ := st.attr("type")
	if typ == "error" {
		return
	}
	from := st.attr("from")
	var addresses *xml.StartElement
	for _, c := range st.children() {
		switch {
		case (c.start.Name.Space == nsPrivilege1 || c.start.Name.Space == nsPrivilege2) && c.start.Name.Local == "privilege":
			if !r.isServer(from) {
				// Another component, a remote domain or a user: Prosody
				// routes the namespace from any of them to us.
				r.log.Warn("ignored a privilege advertisement not from the server", "from", from)
				return
			}
			if p, ok := parsePrivileges(from, c.reader()); ok {
				r.mu.Lock()
				r.priv = p
				r.mu.Unlock()
				r.log.Info("server privileges", "server", from, "namespace", p.ns, "message", p.message, "presence", p.presence)
			}
			return
		case c.start.Name == xml.Name{Space: nsAddress, Local: "addresses"}:
			s := c.start
			addresses = &s
		}
	}
	if addresses == nil {
		return // not for the relay; nothing to answer
	}
	if err := r.checkSender(from); err != nil {
		// At once: a remote server may send from any number of made-up
		// accounts, each of which would get its own share of the
		// stanzas waiting for the disk (see after).
		r.refuse(ctx, send, st, err)
		return
	}
	queued := r.after(from, st.size, func() {
		if err := r.accept(ctx, st, send); err != nil {
			var ref *refusal.Error
			if !errors.As(err, &ref) {
				r.log.Error("relaying message", "from", from, "err", err)
				ref = refusal.New(refusal.Internal, "The relay could not store the message; try again later")
			}
			r.refuse(ctx, send, st, ref)
		}
	})
	if !queued {
		r.refuse(ctx, send, st, errBusy)
	}
}

// checkSender refuses a sender who may not use the relay.
func (r *relay) checkSender(from string) *refusal.Error {
	j, err := jid.Parse(from)
	if err != nil {
		return refusal.New(refusal.BadRequest, "The sender address is not a JID")
	}
	if !domainIn(j.Domainpart(), r.policy.SenderDomains) {
		return refusal.New(refusal.Forbidden, "The relay is limited to accounts on %s", strings.Join(r.policy.SenderDomains, ", "))
	}
	return nil
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
func (r *relay) isServer(from string) bool {
	if from == "" || strings.ContainsAny(from, "@/") {
		return false
	}
	_, parent, _ := strings.Cut(r.jid, ".")
	return strings.EqualFold(from, parent) || domainIn(from, r.policy.RecipientDomains)
}

// after runs f on from's shard, once the messages from has sent so far are
// stored, delivered or refused. It never blocks: it reports false, and
// runs nothing, if from (by bare JID) already has relaySenderInFlight
// stanzas waiting, if the shard is full, or if size more bytes would take
// all senders' waiting stanzas past relayInFlightBytes.
func (r *relay) after(from string, size int, f func()) bool {
	sender := from
	if j, err := jid.Parse(from); err == nil {
		sender = j.Bare().String()
	}
	r.mu.Lock()
	if r.inFlight[sender] >= relaySenderInFlight || r.inBytes+size > relayInFlightBytes {
		r.mu.Unlock()
		return false
	}
	r.inFlight[sender]++
	r.inBytes += size
	r.mu.Unlock()
	shard := fnv.New32a()
	shard.Write([]byte(from))
	select {
	case r.shards[shard.Sum32()%relayShards] <- func() { defer r.landed(sender, size); f() }:
		return true
	default:
		r.landed(sender, size)
		return false
	}
}

// landed releases what after counted for a stanza.
func (r *relay) landed(sender string, size int) {
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
func (r *relay) accept(ctx context.Context, st stanza, send sender) error {
	fromJID, err := jid.Parse(st.attr("from")) // checkSender passed it
	if err != nil {
		return refusal.New(refusal.BadRequest, "The sender address is not a JID")
	}
	typ := st.attr("type")
	switch typ {
	case "":
		typ = "normal"
	case "chat", "normal":
	default:
		return refusal.New(refusal.BadRequest, "The relay carries chat and normal messages, not %s", typ)
	}
	var ad addressing
	var kids []child
	for _, c := range st.children() {
		switch {
		case c.start.Name == xml.Name{Space: nsAddress, Local: "addresses"}:
			if ad, err = r.addresses(c); err != nil {
				return err
			}
			continue
		case c.start.Name == xml.Name{Space: nsDelay, Local: "delay"}, c.start.Name == xml.Name{Space: nsLegacyDelay, Local: "x"}:
			// Only the relay dates what it delivers late: a date
			// the sender wrote would show recipients a forged time.
			continue
		}
		for _, d := range bobElements(c) {
			if err := r.checkBoB(d); err != nil {
				return err
			}
		}
		kids = append(kids, c)
	}
	recips := ad.recipients
	stored, err := r.render(typ, st.attr("id"), st.start.Name.Space, kids, ad)
	if err != nil {
		return err
	}
	if len(stored) > r.policy.MaxStanzaBytes {
		return refusal.New(refusal.PolicyViolation, "The message is %d bytes; the relay accepts at most %d", len(stored), r.policy.MaxStanzaBytes)
	}
	if withThumb := r.withPreview(ctx, kids); len(withThumb) != len(kids) {
		// keep the preview only if the message still fits
		if b, err := r.render(typ, st.attr("id"), st.start.Name.Space, withThumb, ad); err == nil && len(b) <= r.policy.MaxStanzaBytes {
			stored = b
		}
	}

	// Queue for everyone who is offline or still has older messages queued
	// (order per recipient), deliver to the rest now.
	sender := fromJID.String()
	var queue, now []string
	seen := map[string]bool{}
	for _, rc := range recips {
		if seen[rc.bare] {
			continue
		}
		seen[rc.bare] = true
		if r.online(rc.bare) && !r.q.Pending(rc.bare) {
			now = append(now, rc.bare)
		} else {
			queue = append(queue, rc.bare)
		}
	}
	if len(queue) > 0 {
		if err := r.q.Enqueue(ctx, sender, queue, stored); err != nil {
			var lim *offline.LimitError
			if errors.As(err, &lim) {
				return refusal.New(refusal.OverQuota, "The relay cannot queue the message: %s; try again later", lim.Limit())
			}
			return err
		}
	}
	requeued := 0
	for _, bare := range now {
		e := offline.Entry{Recipient: bare, Sender: sender, Stanza: stored}
		if err := r.deliver(ctx, send, e, false); err != nil {
			// The link dropped: keep it for the next connection.
			if err := r.q.Enqueue(ctx, sender, []string{bare}, stored); err != nil {
				return err
			}
			requeued++
		}
	}
	r.observer().RelayAccepted(len(now)-requeued, len(queue)+requeued)
	for _, bare := range queue {
		if r.online(bare) {
			r.drain(ctx, bare, send)
		}
	}
	r.log.Debug("relayed message", "from", sender, "delivered", len(now), "queued", len(queue), "bytes", len(stored))
	return nil
}

// addressing is what an XEP-0033 <addresses/> says: whom to deliver to,
// and the addresses the recipients' clients act on (replyto, replyroom,
// noreply), which XEP-0033 says a relay passes on unchanged.
type addressing struct {
	recipients []recipient
	passOn     []child
}

// addresses reads an XEP-0033 <addresses/>. An ofrom address from the
// sender is dropped: only the relay names the sender (see deliver).
func (r *relay) addresses(c child) (addressing, error) {
	var out addressing
	for _, a := range (stanza{tokens: c.tokens[1:]}).children() {
		if a.start.Name != (xml.Name{Space: nsAddress, Local: "address"}) {
			continue
		}
		typ := attrOf(a.start, "type")
		switch typ {
		case "to", "cc", "bcc":
		case "replyto", "replyroom", "noreply":
			for _, d := range bobElements(a) {
				if err := r.checkBoB(d); err != nil {
					return out, err
				}
			}
			out.passOn = append(out.passOn, a)
			continue
		default:
			continue
		}
		if attrOf(a.start, "delivered") == "true" {
			continue
		}
		addr := attrOf(a.start, "jid")
		if addr == "" {
			return out, refusal.New(refusal.BadRequest, "Only JID addresses are supported, not %q", attrOf(a.start, "uri"))
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
func bobElements(c child) []child {
	var out []child
	type opened struct{ at, depth int }
	var open []opened // <data/> elements not yet closed, innermost last
	depth := 0
	for i, tok := range c.tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if t.Name == (xml.Name{Space: nsBoB, Local: "data"}) {
				open = append(open, opened{i, depth})
			}
		case xml.EndElement:
			if n := len(open); n > 0 && open[n-1].depth == depth {
				o := open[n-1]
				out = append(out, child{start: c.tokens[o.at].(xml.StartElement), tokens: c.tokens[o.at : i+1]})
				open = open[:n-1]
			}
			depth--
		}
	}
	return out
}

// checkBoB enforces XEP-0231 on an embedded thumbnail: valid base64, within
// the size limit, and a cid that is the SHA-1 of the data.
func (r *relay) checkBoB(c child) error {
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
// text without whitespace, which base64 allows between characters. The
// usual single run of text without whitespace is returned as it is, not
// copied.
func bobData(c child) (cid string, text []byte) {
	for _, a := range c.start.Attr {
		if a.Name.Space == "" && a.Name.Local == "cid" {
			cid = a.Value
		}
	}
	depth := 0
	for _, tok := range c.tokens {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth != 1 {
				continue // text of nested elements is not the data
			}
			if text == nil && !hasSpace(t) {
				text = t[:len(t):len(t)] // a later append copies
				continue
			}
			for _, b := range t {
				if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
					text = append(text, b)
				}
			}
		}
	}
	return cid, text
}

// hasSpace reports whether t has a byte up to ' ', which base64 never has
// but whitespace (and control characters) are.
func hasSpace(t []byte) bool {
	for _, b := range t {
		if b <= ' ' {
			return true
		}
	}
	return false
}

// render builds the message as stored and delivered: type, id and payload
// of the original, and an XEP-0033 <addresses/> telling each recipient who
// else got it (to and cc, marked delivered; bcc never shown) and where to
// reply (replyto, replyroom, noreply as the sender wrote them). Payload
// elements in the stanza's own namespace (streamNS) are written without one,
// so they take the namespace of whatever stanza they are delivered in.
func (r *relay) render(typ, id, streamNS string, kids []child, ad addressing) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<message type="`)
	escape(&b, typ)
	b.WriteString(`"`)
	if id != "" {
		b.WriteString(` id="`)
		escape(&b, id)
		b.WriteString(`"`)
	}
	b.WriteString(`>`)
	for _, c := range kids {
		if err := encodeTokens(&b, c.tokens, streamNS); err != nil {
			return nil, err
		}
	}
	b.WriteString(`<addresses xmlns="` + nsAddress + `">`)
	for _, rc := range ad.recipients {
		if rc.kind == "bcc" {
			continue
		}
		b.WriteString(`<address type="` + rc.kind + `" jid="`)
		escape(&b, rc.bare)
		b.WriteString(`" delivered="true"/>`)
	}
	for _, a := range ad.passOn {
		if err := encodeTokens(&b, a.tokens, nsAddress); err != nil {
			return nil, err
		}
	}
	b.WriteString(`</addresses></message>`)
	return b.Bytes(), nil
}

// refuse answers a relay message with an error, and logs and counts it.
func (r *relay) refuse(ctx context.Context, send sender, st stanza, ref *refusal.Error) {
	r.log.Info("relay refused message", "from", st.attr("from"), "reason", ref.Text)
	r.observer().RelayRefused(string(ref.Kind.Condition()))
	msg := struct {
		XMLName xml.Name             `xml:"message"`
		Type    string               `xml:"type,attr"`
		ID      string               `xml:"id,attr,omitempty"`
		From    string               `xml:"from,attr"`
		To      string               `xml:"to,attr"`
		Error   *refusal.StanzaError `xml:",omitempty"`
	}{Type: "error", ID: st.attr("id"), From: r.jid, To: st.attr("from"), Error: ref.Stanza("")}
	b, err := marshal(msg)
	if err == nil {
		err = send(ctx, b, batched)
	}
	if err != nil {
		r.log.Debug("error reply not sent", "to", msg.To, "err", err)
	}
}

func domainIn(d string, list []string) bool {
	for _, x := range list {
		if strings.EqualFold(x, d) {
			return true
		}
	}
	return false
}
