package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"runtime/debug"

	"mellium.im/xmpp/jid"

	"mediaslot/refusal"
	"mediaslot/upload"
)

// Slots is what the component needs from the upload service.
type Slots interface {
	Issue(ctx context.Context, r upload.Request) (upload.Slot, error)
	MaxFileSize() int64
}

// sender writes one stanza, complete XML text, to the server. Replies and
// deliveries are built as text anyway; handing the bytes on spares encoding
// them again token by token (most of a relay delivery's cost). The mode
// says what a nil error promises.
type sender func(ctx context.Context, stanza []byte, mode sendMode) error

// sendMode says when a sender may return.
type sendMode int

const (
	// batched: the stanza may wait, held back in memory, until the read
	// loop next reads, to go out in one write with others (streamConn).
	// For replies: one lost in a crash is asked for again.
	batched sendMode = iota
	// written: the sender returns once the server has read the stanza
	// (and everything sent before): bytes in a socket buffer can still be
	// lost (see acks). For relay deliveries: a queue entry is deleted
	// after, and a message is requeued if it fails. Never from the read
	// loop, which is what reads the server's confirmation.
	written
)

// handler answers the stanzas addressed to the component. Every problem
// becomes a stanza error: nothing a client sends ends the stream.
type handler struct {
	jid     string // the component's JID, the from of every reply
	version string
	slots   Slots
	relay   *relay // nil when no offline queue is configured
	log     *slog.Logger
	obs     Observer // nil: nobody
}

func newHandler(componentJID, version string, slots Slots, log *slog.Logger) *handler {
	return &handler{jid: componentJID, version: version, slots: slots, log: log}
}

// handle dispatches one stanza. Replies go through send. Slot requests are
// answered here, on the read loop: Issue does not wait for a commit, and a
// goroutine per request cost more than the request itself.
func (h *handler) handle(ctx context.Context, st stanza, send sender) {
	switch st.start.Name.Local {
	case "presence":
		// With XEP-0356 managed_entity the server forwards its users' presence.
		h.log.Debug("presence", "from", st.attr("from"), "type", st.attr("type"))
		if h.relay != nil {
			h.relay.handlePresence(ctx, st, send)
		}
		return
	case "message":
		if h.relay != nil {
			h.relay.handleMessage(ctx, st, send)
		}
		return
	}
	typ := st.attr("type")
	if typ != "get" && typ != "set" {
		return // results and errors for us: we send no requests that wait for them
	}
	reply := iq{ID: st.attr("id"), Type: "result", From: st.attr("to"), To: st.attr("from")}
	if reply.From == "" {
		reply.From = h.jid
	}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic answering stanza", "panic", p, "stack", string(debug.Stack()))
			h.answer(ctx, send, reply, nil, refusal.New(refusal.Internal, "The upload service failed on this request").Stanza(""))
		}
	}()
	start, payload, ok := st.payload()
	if !ok {
		h.answer(ctx, send, reply, nil, refusal.New(refusal.BadRequest, "The IQ has no payload").Stanza(""))
		return
	}
	name := start.Name
	switch {
	case typ == "get" && name == xml.Name{Space: nsDiscoInfo, Local: "query"}:
		if node := attrOf(start, "node"); node != "" {
			h.answer(ctx, send, reply, nil, refusal.New(refusal.NotFound, "No such node").Stanza(""))
			return
		}
		h.answer(ctx, send, reply, uploadInfo(h.slots.MaxFileSize(), h.relay != nil), nil)
	case typ == "get" && name == xml.Name{Space: nsDiscoItems, Local: "query"}:
		if node := attrOf(start, "node"); node != "" {
			h.answer(ctx, send, reply, nil, refusal.New(refusal.NotFound, "No such node").Stanza(""))
			return
		}
		h.answer(ctx, send, reply, discoItems{}, nil)
	case typ == "get" && name == xml.Name{Space: nsPing, Local: "ping"}:
		if h.relay != nil && h.relay.checkSender(reply.To) == nil {
			// Clients ping after relay messages to learn that those were
			// dealt with, refusals included (client.SendMedia): answer
			// after the relay has handled the sender's earlier messages.
			// Others have none there (see relay.handleMessage), and
			// must not take places among them.
			if !h.relay.after(reply.To, st.size, func() { h.answer(ctx, send, reply, nil, nil) }) {
				h.answer(ctx, send, reply, nil, errBusy.Stanza(""))
			}
			return
		}
		h.answer(ctx, send, reply, nil, nil)
	case typ == "get" && name == xml.Name{Space: nsVersion, Local: "query"}:
		h.answer(ctx, send, reply, versionResult{Name: "mediaslot", Version: h.version}, nil)
	case name.Local == "request" && (name.Space == nsUpload || name.Space == nsUploadLegacy):
		if typ != "get" {
			h.answer(ctx, send, reply, nil, refusal.New(refusal.BadRequest, "Slot requests are IQs of type get").Stanza(""))
			return
		}
		req, ref := parseSlotRequest(payload)
		if ref != nil {
			h.slotRefused(ref)
			h.answer(ctx, send, reply, nil, ref.Stanza(name.Space))
			return
		}
		from, err := jid.Parse(reply.To)
		if err != nil {
			h.answer(ctx, send, reply, nil, refusal.New(refusal.BadRequest, "The sender address is not a JID").Stanza(""))
			return
		}
		req.Owner, req.Domain = from.Bare().String(), from.Domainpart()
		h.issue(ctx, send, reply, name.Space, req)
	default:
		h.answer(ctx, send, reply, nil, refusal.New(refusal.NotServed, "").Stanza(""))
	}
}

func (h *handler) issue(ctx context.Context, send sender, reply iq, ns string, req upload.Request) {
	slot, err := h.slots.Issue(ctx, req)
	var ref *refusal.Error
	switch {
	case errors.As(err, &ref):
		h.log.Debug("slot refused", "from", req.Owner, "reason", ref.Text)
		h.slotRefused(ref)
		h.answer(ctx, send, reply, nil, ref.Stanza(ns))
	case err != nil:
		h.log.Error("issuing slot", "err", err)
		h.observer().SlotRefused("internal")
		h.answer(ctx, send, reply, nil, refusal.New(refusal.Internal, "The upload service could not issue a slot").Stanza(""))
	default:
		h.log.Debug("slot issued", "from", req.Owner, "slot", slot.ID, "size", req.Size)
		h.observer().SlotIssued()
		h.answer(ctx, send, reply, slotPayload(ns, slot), nil)
	}
}

// answer sends a result with payload, or an error if e is set.
func (h *handler) answer(ctx context.Context, send sender, reply iq, payload any, e *refusal.StanzaError) {
	var b []byte
	var err error
	if raw, ok := payload.(rawXML); ok && e == nil {
		b = result(reply, raw)
	} else {
		reply.Payload = payload
		if e != nil {
			reply.Type, reply.Error, reply.Payload = "error", e, nil
		}
		b, err = marshal(reply)
	}
	if err == nil {
		err = send(ctx, b, batched)
	}
	if err != nil {
		// The link is down; the client will time out and retry.
		h.log.Debug("reply not sent", "to", reply.To, "err", err)
	}
}

type versionResult struct {
	XMLName xml.Name `xml:"jabber:iq:version query"`
	Name    string   `xml:"name"`
	Version string   `xml:"version"`
}

func attrOf(start xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}
