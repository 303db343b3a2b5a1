package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the result for scripts.
func (r *Result) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// row is one line of the table: a metric for each target and the bare
// handler, and whether more is better (for the ratio's reading).
type row struct {
	metric string
	vals   []float64 // per target, then bare (0 = not measured)
	format string
}

// WriteTable writes the result as a table: one column per target, the
// ratio of the first target to the second, and the bare handler with the
// first target's ratio to it.
func (r *Result) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "mediaslot bench %s: per target %d sequential slot requests, %d with %d in flight, %s files, %d round(s)\n\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.N, r.Burst, r.Inflight, formatBytes(r.Size), r.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"metric"}
	for _, t := range r.Targets {
		head = append(head, t.Name)
	}
	two := len(r.Targets) >= 2
	if two {
		head = append(head, r.Targets[0].Name+"/"+r.Targets[1].Name)
	}
	if r.Bare != nil {
		head = append(head, "bare", r.Targets[0].Name+"/bare")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, rw := range r.rows() {
		fmt.Fprintln(tw, strings.Join(r.cells(rw), "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Targets {
		fmt.Fprintf(w, "\n%s (%s): max-file-size %s", t.Name, t.Service, formatBytes(t.MaxFileSize))
		if t.PutHost != "" {
			fmt.Fprintf(w, ", PUT to %s, GET from %s, download verified: %v", t.PutHost, t.GetHost, t.Verified)
		}
		fmt.Fprintln(w)
		for _, e := range t.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	return nil
}

// cells is one row of the results table: the metric, each target's value,
// the ratio of the first two targets, and the bare handler with its ratio.
func (r *Result) cells(rw row) []string {
	cells := []string{rw.metric}
	for i := range r.Targets {
		cells = append(cells, cell(rw.format, rw.vals[i]))
	}
	if len(r.Targets) >= 2 {
		cells = append(cells, ratioCell(ratio(rw.vals[0], rw.vals[1])))
	}
	if r.Bare != nil {
		b := rw.vals[len(r.Targets)]
		cells = append(cells, cell(rw.format, b), ratioCell(ratio(rw.vals[0], b)))
	}
	return cells
}

func (r *Result) rows() []row {
	n := len(r.Targets) + 1
	mk := func(metric, format string, f func(t *TargetResult) float64, bare func(b *HTTPResult) float64) row {
		rw := row{metric: metric, format: format, vals: make([]float64, n)}
		for i := range r.Targets {
			rw.vals[i] = f(&r.Targets[i])
		}
		if bare != nil && r.Bare != nil {
			rw.vals[n-1] = bare(r.Bare)
		}
		return rw
	}
	rows := []row{
		mk("slot latency p50 (ms)", "%.2f", func(t *TargetResult) float64 { return t.SlotLatency.P50 }, nil),
		mk("slot latency p90 (ms)", "%.2f", func(t *TargetResult) float64 { return t.SlotLatency.P90 }, nil),
		mk("slot latency p99 (ms)", "%.2f", func(t *TargetResult) float64 { return t.SlotLatency.P99 }, nil),
		mk(fmt.Sprintf("slots/s, %d in flight (median)", r.Inflight), "%.0f", func(t *TargetResult) float64 { return t.SlotRate.Median }, nil),
	}
	if r.Size > 0 {
		rows = append(rows,
			mk("PUT MB/s (median)", "%.1f", func(t *TargetResult) float64 { return t.Put.Median }, func(b *HTTPResult) float64 { return b.Put.Median }),
			mk("PUT MB/s (min)", "%.1f", func(t *TargetResult) float64 { return t.Put.Min }, func(b *HTTPResult) float64 { return b.Put.Min }),
			mk("GET MB/s (median)", "%.1f", func(t *TargetResult) float64 { return t.Get.Median }, func(b *HTTPResult) float64 { return b.Get.Median }),
		)
	}
	for _, p := range r.procNames() {
		rows = append(rows,
			mk(p+" CPU µs/slot (in flight)", "%.1f", func(t *TargetResult) float64 { return t.CPUPerSlot(p) }, nil),
		)
		// The load generator's own memory and I/O say nothing about the servers.
		if r.Size > 0 && p != clientProc {
			rows = append(rows,
				mk(p+" CPU ms/MB PUT", "%.2f", func(t *TargetResult) float64 { return t.CPUPerMB(p, "put", r.Size, r.Rounds) }, nil),
				mk(p+" bytes read/PUT byte", "%.2f", func(t *TargetResult) float64 { return t.IOPerByte(p, "put", r.Size, r.Rounds) }, nil),
				mk(p+" peak RSS MB, PUT", "%.1f", func(t *TargetResult) float64 { return mb(t.Procs[p]["put"].PeakRSS) }, nil),
				mk(p+" peak RSS MB, GET", "%.1f", func(t *TargetResult) float64 { return mb(t.Procs[p]["get"].PeakRSS) }, nil),
			)
		}
	}
	return rows
}

// clientProc is the name under which the bench process watches itself.
const clientProc = "client"

func (r *Result) procNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, t := range r.Targets {
		for _, p := range sortedKeys(t.Procs) {
			if !seen[p] {
				seen[p] = true
				names = append(names, p)
			}
		}
	}
	return names
}

// CPUPerSlot is the CPU time process p spent per slot in the throughput
// phase, in µs.
func (t *TargetResult) CPUPerSlot(p string) float64 {
	u, ok := t.Procs[p]["throughput"]
	if !ok || t.BurstSlots == 0 {
		return 0
	}
	return u.CPUSeconds * 1e6 / float64(t.BurstSlots)
}

// CPUPerMB is the CPU time process p spent per MB moved in a phase, in ms.
func (t *TargetResult) CPUPerMB(p, phase string, size int64, rounds int) float64 {
	u, ok := t.Procs[p][phase]
	if !ok || size == 0 {
		return 0
	}
	return u.CPUSeconds * 1e3 / (float64(size) * float64(rounds) / 1e6)
}

// IOPerByte is how many bytes process p read by syscalls per byte moved in
// a phase: about 1 for a server in the data path, about 0 for one outside it.
func (t *TargetResult) IOPerByte(p, phase string, size int64, rounds int) float64 {
	u, ok := t.Procs[p][phase]
	if !ok || size == 0 {
		return 0
	}
	return float64(u.ReadBytes) / (float64(size) * float64(rounds))
}

func cell(format string, v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func ratioCell(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
