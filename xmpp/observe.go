package xmpp

import (
	"mediaslot/xmpp/httpupload"
	"mediaslot/xmpp/relay"
)

// Observer is told what the component does, for metrics: the link's state
// here, slot requests and relay messages through the handlers' observers.
// The package imports no metrics library: internal/metrics implements
// Observer with Prometheus. Methods run on the read loop and on worker
// goroutines: they must be quick and safe for concurrent use.
type Observer interface {
	// LinkChanged is called when the link to the server comes up (after
	// the handshake) and when it goes down again.
	LinkChanged(up bool)
	httpupload.Observer
	relay.Observer
}
