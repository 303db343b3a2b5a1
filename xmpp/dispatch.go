package xmpp

import (
	"context"
	"encoding/xml"
	"log/slog"
	"runtime/debug"

	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/version"

	"mediaslot/refusal"
	"mediaslot/xmpp/wire"
)

// Handler serves one protocol over the link: XEP-0363 slot requests
// (package httpupload) or the relay (package relay). The link offers it
// every stanza, in the order of Component's handlers, before answering
// service discovery, ping and version itself. Handle runs on the read loop,
// which reads nothing else meanwhile: it must not wait for the disk or the
// network.
type Handler interface {
	// Handle takes st if it is the handler's, answering through send,
	// and reports whether it took it.
	Handle(ctx context.Context, st wire.Stanza, send wire.Sender) bool
	// Disco adds the handler's identities, features and forms to the
	// component's disco#info answer.
	Disco(info *wire.Info)
}

// linkWatcher is a Handler that forgets what a connection taught it when
// a new one comes up (the relay: privileges and presences are advertised
// again on every connection).
type linkWatcher interface{ LinkUp() }

// features are the link's own, in XEP-0030 order of interest.
var features = []string{disco.NSInfo, disco.NSItems, ping.NS, version.NS}

// dispatcher hands each stanza to the handler that takes it, and answers
// the IQs none takes. Every problem becomes a stanza error: nothing a
// client sends ends the stream.
type dispatcher struct {
	jid      string // the component's JID, the from of replies to stanzas without a to
	version  string
	handlers []Handler
	log      *slog.Logger
}

// handle dispatches one stanza. Replies go through send.
func (d *dispatcher) handle(ctx context.Context, st wire.Stanza, send wire.Sender) {
	typ := st.Attr("type")
	request := st.Start.Name.Local == "iq" && (typ == "get" || typ == "set")
	reply := wire.Reply(st, d.jid)
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic answering stanza", "panic", p, "stack", string(debug.Stack()))
			if request {
				d.refuse(ctx, send, reply, refusal.New(refusal.Internal, "The upload service failed on this request"))
			}
		}
	}()
	for _, h := range d.handlers {
		if h.Handle(ctx, st, send) {
			return
		}
	}
	if !request {
		return // results and errors for us, messages and presence no handler wants
	}
	start, _, ok := st.Payload()
	if !ok {
		d.refuse(ctx, send, reply, refusal.New(refusal.BadRequest, "The IQ has no payload"))
		return
	}
	name := start.Name
	switch {
	case typ == "get" && name == xml.Name{Space: disco.NSInfo, Local: "query"}:
		if wire.AttrOf(start, "node") != "" {
			d.refuse(ctx, send, reply, refusal.New(refusal.NotFound, "No such node"))
			return
		}
		info := wire.Info{}
		info.AddFeatures(features...)
		for _, h := range d.handlers {
			h.Disco(&info)
		}
		wire.Answer(ctx, send, d.log, reply, info, nil)
	case typ == "get" && name == xml.Name{Space: disco.NSItems, Local: "query"}:
		if wire.AttrOf(start, "node") != "" {
			d.refuse(ctx, send, reply, refusal.New(refusal.NotFound, "No such node"))
			return
		}
		wire.Answer(ctx, send, d.log, reply, wire.Items{}, nil)
	case typ == "get" && name == xml.Name{Space: ping.NS, Local: "ping"}:
		wire.Answer(ctx, send, d.log, reply, nil, nil)
	case typ == "get" && name == xml.Name{Space: version.NS, Local: "query"}:
		wire.Answer(ctx, send, d.log, reply, versionResult{Name: "mediaslot", Version: d.version}, nil)
	default:
		d.refuse(ctx, send, reply, refusal.New(refusal.NotServed, ""))
	}
}

func (d *dispatcher) refuse(ctx context.Context, send wire.Sender, reply wire.IQ, ref *refusal.Error) {
	wire.Answer(ctx, send, d.log, reply, nil, ref.Stanza(""))
}

type versionResult struct {
	XMLName xml.Name `xml:"jabber:iq:version query"`
	Name    string   `xml:"name"`
	Version string   `xml:"version"`
}
