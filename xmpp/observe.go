package xmpp

import "mediaslot/refusal"

// Observer is told what the component does, for metrics. The package
// imports no metrics library: internal/metrics implements Observer with
// Prometheus. Methods run on the read loop and on worker goroutines: they
// must be quick and safe for concurrent use.
type Observer interface {
	// LinkChanged is called when the link to the server comes up (after
	// the handshake) and when it goes down again.
	LinkChanged(up bool)
	// SlotIssued is called for each slot granted.
	SlotIssued()
	// SlotRefused is called for each slot request answered with an error:
	// reason is a refusal.Kind's String (bad_request, too_large,
	// forbidden, unavailable, quota, …) or "internal".
	SlotRefused(reason string)
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

// nobody is the Observer of a Component without one.
type nobody struct{}

func (nobody) LinkChanged(bool)       {}
func (nobody) SlotIssued()            {}
func (nobody) SlotRefused(string)     {}
func (nobody) RelayAccepted(_, _ int) {}
func (nobody) RelayDrained(int)       {}
func (nobody) RelayRefused(string)    {}

// observer returns who to tell; handlers made without one tell nobody.
func (h *handler) observer() Observer {
	if h.obs == nil {
		return nobody{}
	}
	return h.obs
}

func (r *relay) observer() Observer {
	if r.obs == nil {
		return nobody{}
	}
	return r.obs
}

// slotRefused tells the observer of a refused slot request.
func (h *handler) slotRefused(ref *refusal.Error) {
	h.observer().SlotRefused(ref.Kind.String())
}
