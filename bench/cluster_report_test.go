package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clusterRun is a phase with k instances in which every watched process
// spent cpu seconds per phase, mediaslot's split evenly over the instances.
func clusterRun(k int, slotRate, accept, flush, cpu float64) *ClusterRun {
	use := func(c float64) map[string]Usage {
		return map[string]Usage{PhaseIdle: {CPUSeconds: c / 100}, PhaseSlots: {CPUSeconds: c}, PhaseEnqueue: {CPUSeconds: c}, PhaseFlush: {CPUSeconds: c}}
	}
	procs := map[string]map[string]Usage{groupEjabberd: use(cpu), groupPostgres: use(cpu), clientProc: use(cpu)}
	for i := range k {
		procs[fmt.Sprintf("%s-%d", groupMediaslot, i+1)] = use(cpu / float64(k))
	}
	return &ClusterRun{
		Instances: k, IdleSeconds: 2, Slots: 1000, SlotRate: slotRate, SlotSeconds: 1000 / slotRate, Procs: procs, Load: 0.5,
		Relay: &RelayResult{N: 500, EnqueueRate: accept, EnqueueSeconds: 500 / accept, FlushRate: flush, FlushSeconds: 500 / flush,
			OutOfOrder: k - 1, Procs: procs},
	}
}

// The cluster comparison as the report shows it: medians of the rates
// over the rounds, CPU per operation over all of them with the instances
// summed, the split between instances, PostgreSQL's CPU per slot and per
// relayed message and what one core of it carries; LoadReport finds
// cluster.json and the report renders its section.
func TestClusterReport(t *testing.T) {
	res := &ClusterResult{Server: "ejabberd 23.01", Balancing: "random", Rounds: 2, Slots: 1000, N: 500,
		Runs: []*ClusterRun{
			clusterRun(1, 400, 250, 2000, 0.5), clusterRun(3, 800, 300, 1500, 0.6),
			clusterRun(3, 1000, 300, 1500, 0.6), clusterRun(1, 600, 250, 2000, 0.5),
		}}
	if got := res.Rate(1, PhaseSlots); got != 500 {
		t.Errorf("median slots/s with one instance %v, want 500", got)
	}
	// 0.6 s per phase of each process over 1000 slots a run
	if got := res.PerOp(3, groupPostgres, PhaseSlots); got != 600 {
		t.Errorf("PostgreSQL CPU per slot %v µs, want 600", got)
	}
	if got := res.PerOp(3, groupMediaslot, PhaseSlots); got < 599.9 || got > 600.1 {
		t.Errorf("mediaslot CPU per slot, the instances summed, %v µs, want 600", got)
	}
	if got := res.Shares(3, PhaseSlots); got != "33 / 33 / 33 %" {
		t.Errorf("split between instances %q", got)
	}
	md := res.Markdown()
	for _, want := range []string{
		"| metric | 1 instance | 3 instances | 3/1 |",
		"| idle: CPU ms per second: PostgreSQL | 2.5 | 3.0 | 1.20 |",
		"| **slots/s** (median) | 500 | 900 | 1.80 |",
		"| slots/s in each round | 400 (load 0.5), 600 (load 0.5) | 800 (load 0.5), 1000 (load 0.5) | - |",
		"| CPU µs per slot: PostgreSQL (all its processes) | 500 | 600 | 1.20 |",
		"| CPU µs per accepted message: all of them | 4000 | 4800 | 1.20 |",
		"| mediaslot's CPU by instance | 100 % | 33 / 33 / 33 % | - |",
		"| **PostgreSQL CPU µs per relayed message** (accepted + flushed) | 2000 | 2400 | 1.20 |",
		"| on paper: slots/s per PostgreSQL core (10⁶ / µs per slot) | 2000 | 1667 | 0.83 |",
		"| relay: duplicates, out of order | 0, 0 | 0, 4 | - |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}

	dir := t.TempDir()
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileCluster), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.WriteReport(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "## Several instances (ejabberd, PostgreSQL, S3)") || !strings.Contains(out.String(), md) {
		t.Errorf("the report lacks the cluster section or its table")
	}

	// Without cluster.json the section says so.
	r, err = LoadReport(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := r.WriteReport(&out); err != nil {
		t.Fatal(err)
	}
	if i := strings.Index(out.String(), "## Several instances"); i < 0 || !strings.Contains(out.String()[i:], "Not measured in this run.") {
		t.Errorf("an empty run's report should say the cluster was not measured")
	}
}
