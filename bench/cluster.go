package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
)

// ClusterPhaseOptions configure RunClusterPhase: one phase of the
// several-instances benchmark, slots then the relay, through one XMPP
// server to however many mediaslot instances are connected as the
// component at the time.
type ClusterPhaseOptions struct {
	// Sessions are logged in; they ask for the slots, Inflight requests
	// in flight in all, spread over them.
	Sessions []*client.Client
	Service  jid.JID
	Slots    int
	Inflight int
	// Relay is the relay run after the slots (RunRelay); its Procs and
	// Progress are set from these.
	Relay RelayOptions
	// Procs are the processes watched: mediaslot's instances named
	// "mediaslot-N", and the server, the database and the client.
	Procs    []Proc
	Progress io.Writer
	Timeout  time.Duration // per slot request; default 10 s
	// Idle is how long the processes are watched doing nothing before
	// the slots: what the instances' background work (leases, polls)
	// costs them and the database; 0 skips it.
	Idle time.Duration
}

// ClusterRun is what one phase measured.
type ClusterRun struct {
	Instances int `json:"instances"`
	Round     int `json:"round"`
	// Load is the machine's load average over one minute when the phase
	// began: other jobs on the machine show there.
	Load        float64 `json:"load"`
	IdleSeconds float64 `json:"idle_s"`
	Slots       int     `json:"slots"`
	SlotSeconds float64 `json:"slot_s"`
	SlotRate    float64 `json:"slots_per_s"`
	// Procs: what each watched process spent idle and issuing the slots
	// (phases "idle" and "slots"); the relay's phases are in Relay.Procs.
	Procs map[string]map[string]Usage `json:"procs"`
	Relay *RelayResult                `json:"relay"`
}

// Phases of a ClusterRun: idle, the slots, the relay's accept and its
// flush.
const (
	PhaseIdle    = "idle"
	PhaseSlots   = "slots"
	PhaseEnqueue = "enqueue"
	PhaseFlush   = "flush"
)

// RunClusterPhase watches the processes idle for opt.Idle after a warm-up
// (warmup slots per session, untimed: each instance's connections to the
// database and its prepared statements), asks for opt.Slots slots, then
// runs the relay: N messages accepted for an offline recipient, then
// flushed when he comes online.
func RunClusterPhase(ctx context.Context, opt ClusterPhaseOptions) (*ClusterRun, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	opt.Inflight = max(opt.Inflight, 1)
	run := &ClusterRun{Slots: opt.Slots, Procs: map[string]map[string]Usage{}, Load: loadAverage()}
	say := func(format string, a ...any) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "bench cluster: "+format+"\n", a...)
		}
	}
	if _, err := slotBurst(ctx, opt.Sessions, opt.Service, warmup*len(opt.Sessions), opt.Inflight, opt.Timeout); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if opt.Idle > 0 {
		say("idle for %v", opt.Idle)
		w := startWatch(opt.Procs)
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(opt.Idle):
		}
		run.IdleSeconds = time.Since(t0).Seconds()
		if err := w.end(run.Procs, PhaseIdle); err != nil {
			return nil, err
		}
	}
	say("%d slot requests from %d sessions, %d in flight", opt.Slots, len(opt.Sessions), opt.Inflight)
	w := startWatch(opt.Procs)
	took, err := slotBurst(ctx, opt.Sessions, opt.Service, opt.Slots, opt.Inflight, opt.Timeout)
	if werr := w.end(run.Procs, PhaseSlots); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	run.SlotSeconds = took.Seconds()
	run.SlotRate = float64(opt.Slots) / run.SlotSeconds
	say("%d slots in %.2f s (%.0f slots/s)", opt.Slots, run.SlotSeconds, run.SlotRate)
	ro := opt.Relay
	ro.Procs, ro.Progress = opt.Procs, opt.Progress
	if run.Relay, err = RunRelay(ctx, ro); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return run, nil
}

// loadAverage is the first field of /proc/loadavg, 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	_, _ = fmt.Sscan(string(b), &v)
	return v
}

// ClusterResult is BenchmarkCluster's: one and three instances of
// mediaslot as one component on ejabberd, sharing PostgreSQL and the S3
// store, measured in alternating phases on the same servers.
type ClusterResult struct {
	Started   time.Time `json:"started"`
	Server    string    `json:"server"`    // "ejabberd 23.01"
	Balancing string    `json:"balancing"` // how ejabberd spreads the component's stanzas: "random"
	Sessions  int       `json:"sessions"`  // slot-asking sessions
	Inflight  int       `json:"inflight"`  // slot requests in flight in all
	Slots     int       `json:"slots"`     // per phase
	N         int       `json:"n"`         // relay messages per phase
	Senders   int       `json:"senders"`
	Pipeline  int       `json:"pipeline"`
	Rounds    int       `json:"rounds"`
	// StanzaBytes is the size of one relayed message, about.
	StanzaBytes int           `json:"stanza_bytes"`
	Runs        []*ClusterRun `json:"runs"`
}

// WriteJSON writes the result for scripts.
func (r *ClusterResult) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// Process groups of the cluster table: all instances together, and each
// other watched process by its name.
const (
	groupMediaslot = "mediaslot"
	groupEjabberd  = "ejabberd"
	groupPostgres  = "postgres"
	groupAll       = "all"
)

// Counts lists the instance counts measured, in increasing order.
func (r *ClusterResult) Counts() []int {
	var out []int
	for _, run := range r.Runs {
		if !slices.Contains(out, run.Instances) {
			out = append(out, run.Instances)
		}
	}
	slices.Sort(out)
	return out
}

func (r *ClusterResult) runs(instances int) []*ClusterRun {
	var out []*ClusterRun
	for _, run := range r.Runs {
		if run.Instances == instances {
			out = append(out, run)
		}
	}
	return out
}

// usage is what the processes of group spent in phase of run, and the
// wall time of the phase.
func (run *ClusterRun) usage(group, phase string) (cpu, wall float64) {
	procs := run.Procs
	switch phase {
	case PhaseIdle:
		wall = run.IdleSeconds
	case PhaseSlots:
		wall = run.SlotSeconds
	case PhaseEnqueue:
		procs, wall = run.Relay.Procs, run.Relay.EnqueueSeconds
	case PhaseFlush:
		procs, wall = run.Relay.Procs, run.Relay.FlushSeconds
	}
	for name, phases := range procs {
		if group == groupAll || name == group || group == groupMediaslot && strings.HasPrefix(name, groupMediaslot+"-") {
			cpu += phases[phase].CPUSeconds
		}
	}
	return cpu, wall
}

// ops is how many operations a phase of run counted: slots or messages.
func (run *ClusterRun) ops(phase string) int {
	if phase == PhaseSlots {
		return run.Slots
	}
	return run.Relay.N
}

// Rate is the median over the runs with that many instances of a phase's
// operations per second: slots issued, relay messages accepted or flushed.
func (r *ClusterResult) Rate(instances int, phase string) float64 {
	var v []float64
	for _, run := range r.runs(instances) {
		v = append(v, run.rate(phase))
	}
	slices.Sort(v)
	return median(v)
}

// rate is a phase's operations per second in run.
func (run *ClusterRun) rate(phase string) float64 {
	switch phase {
	case PhaseEnqueue:
		return run.Relay.EnqueueRate
	case PhaseFlush:
		return run.Relay.FlushRate
	}
	return run.SlotRate
}

// EachRound lists a phase's rate (as Rate) and the load average at the start
// of each run with that many instances, in the order run: "388 (load 0.4), 1694 (load 4.2)".
func (r *ClusterResult) EachRound(instances int, phase string) string {
	var out []string
	for _, run := range r.runs(instances) {
		out = append(out, fmt.Sprintf("%.0f (load %.1f)", run.rate(phase), run.Load))
	}
	return strings.Join(out, ", ")
}

// PerOp is the CPU the processes of group spent per operation of phase
// over all the runs with that many instances, in µs.
func (r *ClusterResult) PerOp(instances int, group, phase string) float64 {
	var cpu float64
	n := 0
	for _, run := range r.runs(instances) {
		c, _ := run.usage(group, phase)
		cpu += c
		n += run.ops(phase)
	}
	if n == 0 {
		return 0
	}
	return cpu * 1e6 / float64(n)
}

// PerSecond is the CPU the processes of group spent per second of phase
// over all the runs with that many instances, in ms: for the idle phase.
func (r *ClusterResult) PerSecond(instances int, group, phase string) float64 {
	var cpu, wall float64
	for _, run := range r.runs(instances) {
		c, w := run.usage(group, phase)
		cpu += c
		wall += w
	}
	return 1000 * ratio(cpu, wall)
}

// Busy is how many cores the watched processes kept busy during a phase,
// over all the runs with that many instances: their CPU time over the
// phase's wall time.
func (r *ClusterResult) Busy(instances int, phase string) float64 {
	var cpu, wall float64
	for _, run := range r.runs(instances) {
		c, w := run.usage(groupAll, phase)
		cpu += c
		wall += w
	}
	return ratio(cpu, wall)
}

// Shares is each instance's part of mediaslot's CPU in a phase, over the
// runs with that many instances, as "34 / 33 / 33 %": how evenly the
// server spread the work.
func (r *ClusterResult) Shares(instances int, phase string) string {
	per := make([]float64, instances)
	var sum float64
	for _, run := range r.runs(instances) {
		for i := range instances {
			c, _ := run.usage(fmt.Sprintf("%s-%d", groupMediaslot, i+1), phase)
			per[i] += c
			sum += c
		}
	}
	if sum == 0 {
		return "-"
	}
	var s []string
	for _, c := range per {
		s = append(s, fmt.Sprintf("%.0f", 100*c/sum))
	}
	return strings.Join(s, " / ") + " %"
}

// Delivery sums the duplicates and out-of-order arrivals of the runs with
// that many instances.
func (r *ClusterResult) Delivery(instances int) (dup, order int) {
	for _, run := range r.runs(instances) {
		dup += run.Relay.Duplicates
		order += run.Relay.OutOfOrder
	}
	return dup, order
}

// clusterRow is one line of the cluster table: a value per instance count.
type clusterRow struct {
	name, format string
	value        func(instances int) float64
	text         func(instances int) string // instead of value: no ratio
}

// Markdown is the comparison as a markdown table: a column per instance
// count and the ratio of the last to the first.
func (r *ClusterResult) Markdown() string {
	if r == nil || len(r.Runs) == 0 {
		return "_Not measured in this run (see the failed phases above)._\n"
	}
	counts := r.Counts()
	perOp := func(group, phase string) func(int) float64 {
		return func(k int) float64 { return r.PerOp(k, group, phase) }
	}
	rate := func(phase string) func(int) float64 { return func(k int) float64 { return r.Rate(k, phase) } }
	rounds := func(phase string) func(int) string { return func(k int) string { return r.EachRound(k, phase) } }
	busy := func(phase string) func(int) float64 { return func(k int) float64 { return r.Busy(k, phase) } }
	shares := func(phase string) func(int) string { return func(k int) string { return r.Shares(k, phase) } }
	cpuRows := func(phase, per string) []clusterRow {
		return []clusterRow{
			{name: "CPU µs per " + per + ": mediaslot (all instances)", format: "%.0f", value: perOp(groupMediaslot, phase)},
			{name: "CPU µs per " + per + ": ejabberd (beam.smp)", format: "%.0f", value: perOp(groupEjabberd, phase)},
			{name: "CPU µs per " + per + ": PostgreSQL (all its processes)", format: "%.0f", value: perOp(groupPostgres, phase)},
			{name: "CPU µs per " + per + ": client", format: "%.0f", value: perOp(clientProc, phase)},
			{name: "CPU µs per " + per + ": all of them", format: "%.0f", value: perOp(groupAll, phase)},
			{name: "cores busy (all of them)", format: "%.2f", value: busy(phase)},
			{name: "mediaslot's CPU by instance", text: shares(phase)},
		}
	}
	pgPerMessage := func(k int) float64 {
		return r.PerOp(k, groupPostgres, PhaseEnqueue) + r.PerOp(k, groupPostgres, PhaseFlush)
	}
	perCore := func(f func(int) float64) func(int) float64 {
		return func(k int) float64 { return ratio(1e6, f(k)) }
	}
	idle := func(group string) func(int) float64 {
		return func(k int) float64 { return r.PerSecond(k, group, PhaseIdle) }
	}
	var rows []clusterRow
	if slices.ContainsFunc(r.Runs, func(run *ClusterRun) bool { return run.IdleSeconds > 0 }) {
		rows = append(rows,
			clusterRow{name: "idle: CPU ms per second: mediaslot (all instances)", format: "%.1f", value: idle(groupMediaslot)},
			clusterRow{name: "idle: CPU ms per second: PostgreSQL", format: "%.1f", value: idle(groupPostgres)},
			clusterRow{name: "idle: CPU ms per second: ejabberd", format: "%.1f", value: idle(groupEjabberd)})
	}
	rows = append(rows,
		clusterRow{name: "**slots/s** (median)", format: "%.0f", value: rate(PhaseSlots)},
		clusterRow{name: "slots/s in each round", text: rounds(PhaseSlots)})
	rows = append(rows, cpuRows(PhaseSlots, "slot")...)
	rows = append(rows,
		clusterRow{name: "**relay: accepted, messages/s** (median)", format: "%.0f", value: rate(PhaseEnqueue)},
		clusterRow{name: "accepted messages/s in each round", text: rounds(PhaseEnqueue)})
	rows = append(rows, cpuRows(PhaseEnqueue, "accepted message")...)
	rows = append(rows, clusterRow{name: "**relay: flushed, messages/s** (median)", format: "%.0f", value: rate(PhaseFlush)})
	rows = append(rows, cpuRows(PhaseFlush, "flushed message")...)
	rows = append(rows,
		clusterRow{name: "**PostgreSQL CPU µs per slot**", format: "%.0f", value: perOp(groupPostgres, PhaseSlots)},
		clusterRow{name: "**PostgreSQL CPU µs per relayed message** (accepted + flushed)", format: "%.0f", value: pgPerMessage},
		clusterRow{name: "on paper: slots/s per PostgreSQL core (10⁶ / µs per slot)", format: "%.0f", value: perCore(perOp(groupPostgres, PhaseSlots))},
		clusterRow{name: "on paper: relayed messages/s per PostgreSQL core", format: "%.0f", value: perCore(pgPerMessage)},
		clusterRow{name: "relay: duplicates, out of order", text: func(k int) string {
			d, o := r.Delivery(k)
			return fmt.Sprintf("%d, %d", d, o)
		}},
	)
	var b strings.Builder
	b.WriteString("| metric |")
	for _, k := range counts {
		fmt.Fprintf(&b, " %d %s |", k, plural(k, "instance", "instances"))
	}
	first, last := counts[0], counts[len(counts)-1]
	fmt.Fprintf(&b, " %d/%d |\n|---|%s---|\n", last, first, strings.Repeat("---|", len(counts)))
	for _, rw := range rows {
		b.WriteString("| " + rw.name + " |")
		for _, k := range counts {
			if rw.text != nil {
				b.WriteString(" " + rw.text(k) + " |")
			} else {
				b.WriteString(" " + fmt.Sprintf(rw.format, rw.value(k)) + " |")
			}
		}
		q := "-"
		if rw.value != nil && len(counts) > 1 {
			if v := ratio(rw.value(last), rw.value(first)); v > 0 {
				q = fmt.Sprintf("%.2f", v)
			}
		}
		b.WriteString(" " + q + " |\n")
	}
	return b.String()
}

func plural(n int, one, more string) string {
	if n == 1 {
		return one
	}
	return more
}
