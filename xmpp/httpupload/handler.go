// Package httpupload serves XEP-0363 HTTP File Upload over the component
// link: it reads slot requests (in the current namespace and the legacy
// v0.2 one, with the v1.2 upload purposes), has the upload service issue
// or refuse them, and answers with the slot or the XEP-0363 error (from
// the refusal table). It adds the upload identity, features and
// max-file-size forms to the component's service discovery.
package httpupload

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	mupload "mellium.im/xmpp/upload"

	"mediaslot/refusal"
	"mediaslot/upload"
	"mediaslot/xmpp/wire"
)

// Namespaces of XEP-0363. mellium has the current one; the legacy one and
// the purposes' are not in mellium.
const (
	NS        = mupload.NS
	nsLegacy  = "urn:xmpp:http:upload"           // XEP-0363 v0.2, still asked for by old clients
	nsPurpose = "urn:xmpp:http:upload:purpose:0" // XEP-0363 v1.2 upload purposes
)

// Slots is what slot requests need from the upload service.
type Slots interface {
	Issue(ctx context.Context, r upload.Request) (upload.Slot, error)
	MaxFileSize() int64
}

// Observer is told of slot requests, for metrics. Methods run on the read
// loop: they must be quick and safe for concurrent use.
type Observer interface {
	// SlotIssued is called for each slot granted.
	SlotIssued()
	// SlotRefused is called for each slot request answered with an error:
	// reason is a refusal.Kind's String (bad_request, too_large,
	// forbidden, unavailable, quota, …) or "internal".
	SlotRefused(reason string)
}

// Handler answers slot requests. With slot records in bbolt it answers on
// the read loop: Issue does not wait for a commit there, and a goroutine
// per request would cost more than the request. With records in a
// database across the network, Issue waits for a round trip, so requests
// are answered by at most workers goroutines, each Issue bounded by
// issueTimeout, and a request finding them all busy is refused at once:
// a slow database never holds up the read loop, nor piles up requests.
type Handler struct {
	jid     string // the component's JID, the from of replies to stanzas without a to
	slots   Slots
	log     *slog.Logger
	obs     Observer
	workers chan struct{} // one token per request being issued; nil: on the read loop
}

// issueTimeout bounds one Issue off the read loop; clients give up on a
// slot request after about 30 s, and an answer they still read is better
// than none.
const issueTimeout = 10 * time.Second

// New returns the Handler of component componentJID, issuing slots from
// slots; obs may be nil. workers > 0 issues slots off the read loop, at
// most that many at once; 0 issues them on it.
func New(componentJID string, slots Slots, workers int, log *slog.Logger, obs Observer) *Handler {
	if obs == nil {
		obs = nobody{}
	}
	h := &Handler{jid: componentJID, slots: slots, log: log, obs: obs}
	if workers > 0 {
		h.workers = make(chan struct{}, workers)
	}
	return h
}

// Handle answers st if it is a slot request, and reports whether it was.
func (h *Handler) Handle(ctx context.Context, st wire.Stanza, send wire.Sender) bool {
	typ := st.Attr("type")
	if st.Start.Name.Local != "iq" || (typ != "get" && typ != "set") {
		return false
	}
	start, payload, ok := st.Payload()
	if name := start.Name; !ok || name.Local != "request" || (name.Space != NS && name.Space != nsLegacy) {
		return false
	}
	ns := start.Name.Space
	reply := wire.Reply(st, h.jid)
	if typ != "get" {
		wire.Answer(ctx, send, h.log, reply, nil, refusal.New(refusal.BadRequest, "Slot requests are IQs of type get").Stanza(""))
		return true
	}
	req, ref := parseSlotRequest(payload)
	if ref != nil {
		h.refused(ctx, send, reply, ns, ref)
		return true
	}
	from, err := jid.Parse(reply.To)
	if err != nil {
		wire.Answer(ctx, send, h.log, reply, nil, refusal.New(refusal.BadRequest, "The sender address is not a JID").Stanza(""))
		return true
	}
	req.Owner, req.Domain = from.Bare().String(), from.Domainpart()
	if h.workers == nil {
		h.issue(ctx, send, reply, ns, req)
		return true
	}
	select {
	case h.workers <- struct{}{}:
	default:
		h.refused(ctx, send, reply, ns, refusal.New(refusal.Unavailable, "Too many slot requests are waiting for the upload service's database; try again shortly"))
		return true
	}
	go func() {
		defer func() { <-h.workers }()
		ictx, cancel := context.WithTimeout(ctx, issueTimeout)
		defer cancel()
		h.issue(ictx, send, reply, ns, req)
	}()
	return true
}

// issue has the upload service issue the slot req asks for, and answers.
func (h *Handler) issue(ctx context.Context, send wire.Sender, reply wire.IQ, ns string, req upload.Request) {
	slot, err := h.slots.Issue(ctx, req)
	var ref *refusal.Error
	switch {
	case errors.As(err, &ref):
		h.log.Debug("slot refused", "from", req.Owner, "reason", ref.Text)
		h.refused(ctx, send, reply, ns, ref)
	case err != nil:
		h.log.Error("issuing slot", "err", err)
		h.obs.SlotRefused(refusal.Internal.String())
		wire.Answer(ctx, send, h.log, reply, nil, refusal.New(refusal.Internal, "The upload service could not issue a slot").Stanza(""))
	default:
		h.log.Debug("slot issued", "from", req.Owner, "slot", slot.ID, "size", req.Size)
		h.obs.SlotIssued()
		wire.Answer(ctx, send, h.log, reply, slotPayload(ns, slot), nil)
	}
}

// refused answers a refused request with the XEP-0363 error, in the
// request's namespace, and counts it.
func (h *Handler) refused(ctx context.Context, send wire.Sender, reply wire.IQ, ns string, ref *refusal.Error) {
	h.obs.SlotRefused(ref.Kind.String())
	wire.Answer(ctx, send, h.log, reply, nil, ref.Stanza(ns))
}

// Disco adds the upload service: identity store/file, both namespaces and
// the purposes as features, and one max-file-size form per namespace
// (clients read the form whose FORM_TYPE is the namespace they speak).
func (h *Handler) Disco(info *wire.Info) {
	info.Identities = append(info.Identities, wire.Identity{Category: "store", Type: "file", Name: "HTTP File Upload"})
	info.AddFeatures(NS, nsLegacy)
	for _, p := range upload.Purposes {
		info.AddFeatures(nsPurpose + "#" + string(p))
	}
	for _, ns := range []string{NS, nsLegacy} {
		info.Forms = append(info.Forms, wire.Form{Type: "result", Fields: []wire.FormField{
			{Var: "FORM_TYPE", Type: "hidden", Value: ns},
			{Var: "max-file-size", Value: strconv.FormatInt(h.slots.MaxFileSize(), 10)},
		}})
	}
}

// nobody is the Observer of a Handler made without one.
type nobody struct{}

func (nobody) SlotIssued()        {}
func (nobody) SlotRefused(string) {}
