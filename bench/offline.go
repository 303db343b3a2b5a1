package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"mediaslot/client"
)

// OfflineOptions configure RunOffline: the server's own offline storage
// (mod_offline) against the relay, with the same media messages from the
// same client, in alternating rounds.
type OfflineOptions struct {
	// Relay is one side's run; N is per round and side, Direct is set by
	// RunOffline.
	Relay  RelayOptions
	Rounds int
	// Server names the XMPP server ("prosody", "ejabberd"); the entry of
	// Relay.Procs with that name is its process.
	Server string
}

// OfflineResult is what RunOffline measured: every round of each side.
type OfflineResult struct {
	Server      string         `json:"server"`
	N           int            `json:"n"` // messages per round and side
	Rounds      int            `json:"rounds"`
	StanzaBytes int            `json:"stanza_bytes"`
	Offline     []*RelayResult `json:"offline"` // the server's mod_offline, one per round
	Relay       []*RelayResult `json:"relay"`   // mediaslot's relay, one per round
}

// Sides of an OfflineResult.
const (
	SideOffline = "offline"
	SideRelay   = "relay"
)

// RunOffline measures, in each round, first the server's offline storage
// (plain messages to the offline recipient), then the relay (the same
// messages through the component). Before the first round the recipient
// logs in and out, so that the relay has seen them go offline (ejabberd
// reports presences only as they happen); each flush ends the same way.
func RunOffline(ctx context.Context, opt OfflineOptions) (*OfflineResult, error) {
	opt.Rounds = max(opt.Rounds, 1)
	res := &OfflineResult{Server: opt.Server, N: opt.Relay.N, Rounds: opt.Rounds}
	if err := presenceBlip(ctx, opt.Relay.Recipient); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	for round := range opt.Rounds {
		for _, direct := range []bool{true, false} {
			ro := opt.Relay
			ro.Direct = direct
			side := SideRelay
			if direct {
				side = SideOffline
			}
			if opt.Relay.Progress != nil {
				fmt.Fprintf(opt.Relay.Progress, "bench offline: %s round %d/%d: %s\n", opt.Server, round+1, opt.Rounds, side)
			}
			r, err := RunRelay(ctx, ro)
			if err != nil {
				return res, fmt.Errorf("%s, round %d: %w", side, round+1, err)
			}
			res.StanzaBytes = r.StanzaBytes
			if direct {
				res.Offline = append(res.Offline, r)
			} else {
				res.Relay = append(res.Relay, r)
			}
		}
	}
	return res, nil
}

// presenceBlip logs opt's account in and out with an available and an
// unavailable presence.
func presenceBlip(ctx context.Context, opt client.Options) error {
	c, err := client.Dial(ctx, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendPresence(ctx); err != nil {
		return err
	}
	return c.SendUnavailable(ctx)
}

// WriteJSON writes the result for scripts.
func (r *OfflineResult) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

func (r *OfflineResult) side(name string) []*RelayResult {
	if name == SideRelay {
		return r.Relay
	}
	return r.Offline
}

// Median is the median over the rounds of one side of a RelayResult
// value ("enqueue_per_s", "flush_s", "flush_per_s", "first_s").
func (r *OfflineResult) Median(side, what string) float64 {
	var v []float64
	for _, rr := range r.side(side) {
		switch what {
		case "enqueue_per_s":
			v = append(v, rr.EnqueueRate)
		case "flush_s":
			v = append(v, rr.FlushSeconds)
		case "flush_per_s":
			v = append(v, rr.FlushRate)
		case "first_s":
			v = append(v, rr.FirstSeconds)
		}
	}
	slices.Sort(v)
	return median(v)
}

// PerMessage is process p's CPU per message in phase ("enqueue",
// "flush") over all rounds of side, in µs.
func (r *OfflineResult) PerMessage(side, p, phase string) float64 {
	var cpu float64
	n := 0
	for _, rr := range r.side(side) {
		cpu += rr.Procs[p][phase].CPUSeconds
		n += rr.N
	}
	if n == 0 {
		return 0
	}
	return cpu * 1e6 / float64(n)
}

// KeptBy sums, over the rounds of side, who stamped the delay of the
// messages received ("" for none), as "who: count" pairs.
func (r *OfflineResult) KeptBy(side string) string {
	sum := map[string]int{}
	for _, rr := range r.side(side) {
		for k, v := range rr.KeptBy {
			sum[k] += v
		}
	}
	var out []string
	for _, k := range sortedKeys(sum) {
		name := k
		if name == "" {
			name = "no delay"
		}
		out = append(out, fmt.Sprintf("%s: %d", name, sum[k]))
	}
	return strings.Join(out, ", ")
}

// Duplicates sums the duplicates and out-of-order arrivals of a side.
func (r *OfflineResult) Duplicates(side string) (dup, order int) {
	for _, rr := range r.side(side) {
		dup += rr.Duplicates
		order += rr.OutOfOrder
	}
	return dup, order
}

// offlineRow is one line of the comparison: the value of each side, the
// ratio relay/offline and the target for it.
type offlineRow struct {
	name, format   string
	offline, relay float64
	target         string
	met            func(ratio, relay float64) bool
	relayOnly      bool
}

// Markdown is the comparison as a markdown table.
func (r *OfflineResult) Markdown() string {
	if r == nil || len(r.Offline) == 0 || len(r.Relay) == 0 {
		return "_Not measured in this run (see the failed phases above)._\n"
	}
	srv := r.Server
	rows := []offlineRow{
		{name: "accept, messages/s (median)", format: "%.0f", offline: r.Median(SideOffline, "enqueue_per_s"), relay: r.Median(SideRelay, "enqueue_per_s"),
			target: "≥ 1.5", met: func(q, _ float64) bool { return q >= 1.5 }},
		{name: srv + " CPU µs per accepted message", format: "%.0f", offline: r.PerMessage(SideOffline, srv, "enqueue"), relay: r.PerMessage(SideRelay, srv, "enqueue")},
		{name: "mediaslot CPU µs per accepted message", format: "%.0f", relay: r.PerMessage(SideRelay, "mediaslot", "enqueue"), relayOnly: true},
		{name: "flush: presence to last message, s (median)", format: "%.2f", offline: r.Median(SideOffline, "flush_s"), relay: r.Median(SideRelay, "flush_s"),
			target: "≤ 1.0", met: func(q, _ float64) bool { return q <= 1.0 }},
		{name: "flush, messages/s (median)", format: "%.0f", offline: r.Median(SideOffline, "flush_per_s"), relay: r.Median(SideRelay, "flush_per_s")},
		{name: "presence to first message, ms (median)", format: "%.1f", offline: 1000 * r.Median(SideOffline, "first_s"), relay: 1000 * r.Median(SideRelay, "first_s"),
			target: "relay ≤ 50 ms", met: func(_, v float64) bool { return v <= 50 }},
		{name: srv + " CPU µs per flushed message", format: "%.0f", offline: r.PerMessage(SideOffline, srv, "flush"), relay: r.PerMessage(SideRelay, srv, "flush"),
			target: "≤ 1.0", met: func(q, _ float64) bool { return q <= 1.0 }},
		{name: "mediaslot CPU µs per flushed message", format: "%.0f", relay: r.PerMessage(SideRelay, "mediaslot", "flush"), relayOnly: true},
		{name: "client CPU µs per message (accept + flush)", format: "%.0f",
			offline: r.PerMessage(SideOffline, clientProc, "enqueue") + r.PerMessage(SideOffline, clientProc, "flush"),
			relay:   r.PerMessage(SideRelay, clientProc, "enqueue") + r.PerMessage(SideRelay, clientProc, "flush")},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| metric | %s's mod_offline | mediaslot's relay | relay/%s | target (issue 17) |\n|---|---|---|---|---|\n", srv, srv)
	for _, rw := range rows {
		off, ratio := "-", "-"
		if !rw.relayOnly {
			off = fmt.Sprintf(rw.format, rw.offline)
			if rw.offline > 0 {
				ratio = fmt.Sprintf("%.2f", rw.relay/rw.offline)
			}
		}
		target := rw.target
		if rw.met != nil && rw.offline > 0 {
			verdict := "not met"
			if rw.met(rw.relay/rw.offline, rw.relay) {
				verdict = "met"
			}
			target += ": " + verdict
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", rw.name, off, fmt.Sprintf(rw.format, rw.relay), ratio, target)
	}
	od, oo := r.Duplicates(SideOffline)
	rd, ro := r.Duplicates(SideRelay)
	fmt.Fprintf(&b, "| received with a delay from | %s | %s | | |\n", r.KeptBy(SideOffline), r.KeptBy(SideRelay))
	fmt.Fprintf(&b, "| duplicates, out of order | %d, %d | %d, %d | | |\n", od, oo, rd, ro)
	return b.String()
}
