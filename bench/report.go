package bench

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// The files scripts/bench.sh leaves in its results directory, which
// WriteReport turns into docs/BENCHMARKS.md.
const (
	fileMachine   = "machine.txt"     // key=value lines
	fileCommands  = "commands.txt"    // the commands run, one a line
	fileGoBench   = "gobench.txt"     // go test -bench output
	fileDisk      = "disk.json"       // Result: mediaslot (disk) vs Prosody vs bare: latency, PUT, GET
	fileDiskBurst = "disk-burst.json" // Result: the same, slots with 16 in flight
	fileDiskBare  = "disk-bare.json"  // Result: mediaslot (disk) vs bare only, larger files, more rounds
	fileS3Burst   = "s3-burst.json"   // Result: mediaslot on S3, slots with 16 in flight
	fileBig       = "big.json"        // Result: one 1 GiB upload and download
	fileS3        = "s3.json"         // Result: mediaslot on the S3 store
	fileSendfile  = "sendfile.txt"    // key=value: strace of a download
	fileRelay     = "relay.json"      // RelayResult: 10,000 messages end to end
	fileQueue     = "queue.json"      // RelayResult: relay run with 1,000,000 queued
	fileOffline   = "offline-%s.json" // OfflineResult of one XMPP server: its mod_offline vs the relay
	fileCluster   = "cluster.json"    // ClusterResult: one and three instances on ejabberd, PostgreSQL and S3
	fileQueueMem  = "queue-mem.txt"   // key=value: mediaslot's memory after starting on the full queue
	fileFill      = "fill.txt"        // output of bench fill-queue
	fileTests     = "tests.txt"       // key=value: test name = PASS/FAIL
	filePrefix    = "profile-"        // profile-<name>.txt: pprof -top output
	fileErrors    = ".errors"         // <phase>.errors: why a phase failed, one attempt a line
)

//go:embed report.md.tmpl
var reportTemplate string

// Report is everything docs/BENCHMARKS.md shows.
type Report struct {
	Machine   map[string]string
	Commands  []string
	Go        *GoBench
	Disk      *Result
	DiskBurst *Result
	DiskBare  *Result
	Big       *Result
	S3        *Result
	S3Burst   *Result
	Relay     *RelayResult
	Queue     *RelayResult
	Offline   []*OfflineResult // Prosody's, then ejabberd's
	Cluster   *ClusterResult   // nil when not measured
	QueueMem  map[string]string
	Fill      string
	Sendfile  map[string]string
	Tests     map[string]string
	Errors    map[string][]string // phase -> failed attempts
	Profiles  []Profile
}

// Profile is the top of one CPU profile.
type Profile struct {
	Name string
	Top  string
}

// LoadReport reads a results directory; missing files leave their part empty.
func LoadReport(dir string) (*Report, error) {
	r := &Report{Errors: map[string][]string{}}
	var errs []error
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		return b
	}
	r.Machine = keyValueFile(read(fileMachine))
	for _, l := range strings.Split(strings.TrimSpace(string(read(fileCommands))), "\n") {
		if l != "" {
			r.Commands = append(r.Commands, l)
		}
	}
	if b := read(fileGoBench); b != nil {
		g, err := ParseGoBench(bytes.NewReader(b))
		errs = append(errs, err)
		r.Go = g
	}
	r.Disk, r.DiskBurst, r.DiskBare, r.Big, r.S3, r.S3Burst = &Result{}, &Result{}, &Result{}, &Result{}, &Result{}, &Result{}
	for name, into := range map[string]any{fileDisk: r.Disk, fileDiskBurst: r.DiskBurst, fileDiskBare: r.DiskBare, fileBig: r.Big, fileS3: r.S3, fileS3Burst: r.S3Burst, fileRelay: &r.Relay, fileQueue: &r.Queue, fileCluster: &r.Cluster} {
		if b := read(name); len(bytes.TrimSpace(b)) > 0 {
			if err := json.Unmarshal(b, into); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	for _, server := range []string{"prosody", "ejabberd"} {
		if b := read(fmt.Sprintf(fileOffline, server)); len(bytes.TrimSpace(b)) > 0 {
			o := &OfflineResult{}
			if err := json.Unmarshal(b, o); err != nil {
				errs = append(errs, fmt.Errorf("offline %s: %w", server, err))
				continue
			}
			r.Offline = append(r.Offline, o)
		}
	}
	r.QueueMem = keyValueFile(read(fileQueueMem))
	r.Sendfile = keyValueFile(read(fileSendfile))
	r.Tests = keyValueFile(read(fileTests))
	r.Fill = strings.TrimSpace(string(read(fileFill)))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, filePrefix) && strings.HasSuffix(n, ".txt"):
			r.Profiles = append(r.Profiles, Profile{Name: strings.TrimSuffix(strings.TrimPrefix(n, filePrefix), ".txt"), Top: strings.TrimSpace(string(read(n)))})
		case strings.HasSuffix(n, fileErrors):
			for _, l := range strings.Split(strings.TrimSpace(string(read(n))), "\n") {
				if l != "" {
					r.Errors[strings.TrimSuffix(n, fileErrors)] = append(r.Errors[strings.TrimSuffix(n, fileErrors)], l)
				}
			}
		}
	}
	return r, errors.Join(errs...)
}

func keyValueFile(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// WriteReport renders the report.
func (r *Report) WriteReport(w io.Writer) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"f0": func(v float64) string { return fmt.Sprintf("%.0f", v) },
		"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"f2": func(v float64) string { return fmt.Sprintf("%.2f", v) },
		"f3": func(v float64) string { return fmt.Sprintf("%.3f", v) },
		"mb": func(v int64) string { return fmt.Sprintf("%.1f", mb(v)) },
		"us": func(s float64) string { return fmt.Sprintf("%.0f", s*1e6) },
		"div": func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		},
		"mul":   func(a, b float64) float64 { return a * b },
		"add3":  func(a, b, c float64) float64 { return a + b + c },
		"max64": func(a, b int64) int64 { return max(a, b) },
		"kbMB":  kbMB,
		"atof": func(s string) float64 {
			v, _ := strconv.ParseFloat(s, 64)
			return v
		},
		"gb":    r.Go.Get,
		"bytes": formatBytes,
	}).Option("missingkey=zero").Parse(reportTemplate)
	if err != nil {
		return err
	}
	return t.Execute(w, r)
}

// usage returns what process p spent in a phase of the first target.
func (res *Result) usage(p, phase string) Usage {
	if res == nil || len(res.Targets) == 0 {
		return Usage{}
	}
	return res.Targets[0].Procs[p][phase]
}

// Markdown is the result as a markdown table, like WriteTable's.
func (res *Result) Markdown() string {
	if res == nil || len(res.Targets) == 0 {
		return "_Not measured in this run (see the failed phases above)._\n"
	}
	var b strings.Builder
	head := []string{"metric"}
	for _, t := range res.Targets {
		head = append(head, fmt.Sprintf("%s (%s)", t.Name, t.Service))
	}
	two := len(res.Targets) >= 2
	if two {
		head = append(head, res.Targets[0].Name+"/"+res.Targets[1].Name)
	}
	if res.Bare != nil {
		head = append(head, "bare handler", res.Targets[0].Name+"/bare")
	}
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|" + strings.Repeat("---|", len(head)) + "\n")
	for _, rw := range res.rows() {
		empty := true
		for _, v := range rw.vals {
			empty = empty && v == 0
		}
		if empty {
			continue
		}
		b.WriteString("| " + strings.Join(res.cells(rw), " | ") + " |\n")
	}
	return b.String()
}

// Rounds lists per-round values, for showing the spread.
func (rt Rate) List() string {
	var s []string
	for _, v := range rt.Rounds {
		s = append(s, fmt.Sprintf("%.1f", v))
	}
	return strings.Join(s, ", ")
}

// Goal is one line of the target table.
type Goal struct {
	Goal     string
	Where    string // what was measured: end to end, in-process benchmark
	Measured string
	Met      bool
	Known    bool // measured at all
}

// Verdict is "met", "missed" or "not measured".
func (t Goal) Verdict() string {
	switch {
	case !t.Known:
		return "not measured"
	case t.Met:
		return "met"
	}
	return "**missed**"
}

// Goals evaluates issue 7's targets against the measurements.
func (r *Report) Goals() []Goal {
	var out []Goal
	add := func(goal, where string, known, met bool, format string, a ...any) {
		out = append(out, Goal{Goal: goal, Where: where, Known: known, Met: met, Measured: fmt.Sprintf(format, a...)})
	}
	g := r.Go
	if d := r.Disk; len(d.Targets) >= 2 {
		a, b := d.Targets[0], d.Targets[1]
		add("slot p50 ≤ Prosody's mod_http_file_share", "end to end, same Prosody", a.SlotLatency.P50 > 0 && b.SlotLatency.P50 > 0, a.SlotLatency.P50 <= b.SlotLatency.P50,
			"%.2f ms vs %.2f ms (%.2f×)", a.SlotLatency.P50, b.SlotLatency.P50, ratio(a.SlotLatency.P50, b.SlotLatency.P50))
	}
	if d := r.DiskBurst; len(d.Targets) >= 2 {
		a, b := d.Targets[0], d.Targets[1]
		add("≥ 5,000 slots/s, 16 in flight", "end to end, through Prosody", a.SlotRate.Median > 0, a.SlotRate.Median >= 5000,
			"%.0f slots/s (Prosody's module: %.0f)", a.SlotRate.Median, b.SlotRate.Median)
	}
	if v := g.Get("xmpp.BenchmarkSlotIQService", "slots/s"); v > 0 {
		add("≥ 5,000 slots/s, 16 in flight", "component alone: stanza parse, Issue, reply; records committed in the background (BenchmarkSlotIQService)", true, v >= 5000, "%.0f slots/s", v)
	}
	if d := r.Disk; d != nil && len(d.Targets) >= 2 {
		a, b := d.Targets[0], d.Targets[1]
		add("disk PUT ≥ 2× Prosody's", fmt.Sprintf("end to end, %s files, median of %d rounds", formatBytes(d.Size), d.Rounds), a.Put.Median > 0 && b.Put.Median > 0,
			ratio(a.Put.Median, b.Put.Median) >= 2, "%.0f vs %.1f MB/s (%.0f×)", a.Put.Median, b.Put.Median, ratio(a.Put.Median, b.Put.Median))
	}
	if d := r.DiskBare; len(d.Targets) >= 1 && d.Bare != nil {
		paired := d.Targets[0].Put.PairedRatio(d.Bare.Put)
		add("disk PUT ≥ 90 % of the bare handler", fmt.Sprintf("end to end, %s files, %d alternating rounds, the bare handler in its own process: median of the per-round ratios", formatBytes(d.Size), d.Rounds), paired > 0,
			paired >= 0.9, "%.0f %% (medians %.0f vs %.0f MB/s)", 100*paired, d.Targets[0].Put.Median, d.Bare.Put.Median)
	}
	if v := g.Get("bench.BenchmarkPutVsBare", "mediaslot/bare"); v > 0 {
		add("disk PUT ≥ 90 % of the bare handler", "in-process, 64 MiB, alternating (BenchmarkPutVsBare)", true, v >= 0.9,
			"%.0f vs %.0f MB/s (%.0f %%)", g.Get("bench.BenchmarkPutVsBare", "mediaslot-MB/s"), g.Get("bench.BenchmarkPutVsBare", "bare-MB/s"), 100*v)
	}
	if s := r.Sendfile; s["sendfile_bytes"] != "" {
		sent, got := kb(s["sendfile_bytes"]), kb(s["get_bytes"])
		// net/http writes the first 512 bytes itself (content sniffing) and
		// sends the rest with sendfile.
		add("GET served with sendfile", "strace of mediaslot during downloads", got > 0, sent > 0 && float64(sent) >= 0.99*float64(got),
			"%s sendfile calls moved %s bytes of %s downloaded", s["sendfile_calls"], s["sendfile_bytes"], s["get_bytes"])
	}
	if v, ok := r.Tests["TestGetHandsFileToSendfile"]; ok {
		add("GET served with sendfile", "test: the handler hands the *os.File to ServeContent's ReadFrom", true, v == "PASS", "%s", v)
	}
	if s := r.S3; len(s.Targets) > 0 {
		t := s.Targets[0]
		rd := t.IOPerByte("mediaslot", "put", s.Size, s.Rounds)
		add("S3: mediaslot out of the data path", "end to end: bytes mediaslot read per byte uploaded", s.Size > 0 && t.Put.Median > 0, rd < 0.01,
			"%.4f (PUT URLs point at %s)", rd, t.PutHost)
	}
	if s := r.S3Burst; len(s.Targets) > 0 {
		v := s.Targets[0].CPUPerSlot("mediaslot")
		add("S3: ≤ 50 µs CPU per slot", "end to end: mediaslot's CPU time / slots, 16 in flight", v > 0, v <= 50, "%.0f µs", v)
	}
	if v := g.Get("xmpp.BenchmarkSlotIQServiceS3", "cpu-µs/slot"); v > 0 {
		add("S3: ≤ 50 µs CPU per slot", "component alone: stanza parse, Issue with the S3 presigner, reply, commits (BenchmarkSlotIQServiceS3)", true, v <= 50, "%.0f µs", v)
	}
	if v := g.Get("upload.BenchmarkIssueS3", "cpu-µs/slot"); v > 0 {
		add("S3: ≤ 50 µs CPU per slot", "Issue with the S3 presigner, 16 goroutines (BenchmarkIssueS3)", true, v <= 50, "%.0f µs", v)
	}
	if v := g.Get("offline.BenchmarkEnqueueParallel/mapfreelist", "stanzas/s"); v > 0 {
		add("≥ 20,000 stanzas/s enqueued durably", "queue: 8 KB stanzas, group commit (offline BenchmarkEnqueueParallel/mapfreelist)", true, v >= 20000, "%.0f stanzas/s", v)
	}
	if v := g.Get("xmpp.BenchmarkRelayEnqueue", "stanzas/s"); v > 0 {
		add("≥ 20,000 stanzas/s enqueued durably", "relay: parse, XEP-0033/0231 checks, render, enqueue (BenchmarkRelayEnqueue)", true, v >= 20000, "%.0f stanzas/s", v)
	}
	if rl := r.Relay; rl != nil && rl.EnqueueRate > 0 {
		add("≥ 20,000 stanzas/s enqueued durably", "end to end through Prosody, 8.7 KB messages", true, rl.EnqueueRate >= 20000, "%.0f messages/s", rl.EnqueueRate)
	}
	if v := g.Get("xmpp.BenchmarkRelayDrain", "s/10k"); v > 0 {
		add("10,000 queued stanzas flushed within 2 s", "queue + deliver, no network (BenchmarkRelayDrain)", true, v <= 2, "%.2f s", v)
	}
	if rl := r.Relay; rl != nil && rl.FlushSeconds > 0 {
		add("10,000 queued stanzas flushed within 2 s", "end to end: presence to last message at the client, through Prosody", true, rl.FlushSeconds <= 2, "%.1f s", rl.FlushSeconds)
	}
	if b := r.Big; b != nil && len(b.Targets) > 0 {
		p := max(b.usage("mediaslot", "put").PeakRSS, b.usage("mediaslot", "get").PeakRSS)
		add("RSS < 64 MB during a 1 GiB upload and download", "VmHWM of mediaslot", p > 0, p < 64<<20, "%.1f MB", mb(p))
	}
	if q := r.QueueMem; q["VmHWM"] != "" {
		add("RSS < 64 MB with 1,000,000 stanzas queued", "VmHWM of mediaslot after start-up on the full queue", true, kb(q["VmHWM"]) < 64<<10,
			"%s MB (RssAnon %s MB, RssFile %s MB)", kbMB(q["VmHWM"]), kbMB(q["RssAnon"]), kbMB(q["RssFile"]))
	}
	if q := r.Queue; q != nil {
		p := max(q.Procs["mediaslot"]["enqueue"].PeakRSS, q.Procs["mediaslot"]["flush"].PeakRSS)
		a := max(q.Procs["mediaslot"]["enqueue"].PeakAnon, q.Procs["mediaslot"]["flush"].PeakAnon)
		add("RSS < 64 MB with 1,000,000 stanzas queued", fmt.Sprintf("VmHWM while %d more are relayed and flushed", q.N), p > 0, p < 64<<20, "%.1f MB (RssAnon at most %.1f MB)", mb(p), mb(a))
	}
	return out
}

func kb(s string) int64 {
	var n int64
	_, _ = fmt.Sscanf(s, "%d", &n)
	return n
}

func kbMB(s string) string { return fmt.Sprintf("%.1f", float64(kb(s))/1024) }

// GoRows lists the Go benchmarks for the report's table.
func (r *Report) GoRows() []string {
	g := r.Go
	var out []string
	for _, n := range g.Names() {
		var cells []string
		for _, unit := range []string{"ns/op", "MB/s", "slots/s", "stanzas/s", "cpu-µs/slot", "db-cpu-µs/slot", "cpu-µs/stanza", "s/10k", "mediaslot-MB/s", "bare-MB/s", "mediaslot/bare", "B/op", "allocs/op"} {
			if v := g.Get(n, unit); v != 0 {
				cells = append(cells, fmt.Sprintf("%s %s", trimFloat(v), unit))
			}
		}
		out = append(out, fmt.Sprintf("| %s | %d | %s |", n, g.Runs(n), strings.Join(cells, ", ")))
	}
	return out
}

func trimFloat(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// DiskA and DiskB are mediaslot and the baseline in the disk run.
func (r *Report) DiskA() *TargetResult { return nth(r.Disk, 0) }

// DiskB is the baseline (Prosody's mod_http_file_share) in the disk run.
func (r *Report) DiskB() *TargetResult { return nth(r.Disk, 1) }

// S3A is mediaslot on the S3 store.
func (r *Report) S3A() *TargetResult { return nth(r.S3, 0) }

// DiskBurstA is mediaslot with slots in flight; DiskBurstB the baseline.
func (r *Report) DiskBurstA() *TargetResult { return nth(r.DiskBurst, 0) }

// DiskBurstB is the baseline with slots in flight.
func (r *Report) DiskBurstB() *TargetResult { return nth(r.DiskBurst, 1) }

// S3BurstA is mediaslot on the S3 store with slots in flight.
func (r *Report) S3BurstA() *TargetResult { return nth(r.S3Burst, 0) }

// BigA is mediaslot in the 1 GiB run.
func (r *Report) BigA() *TargetResult { return nth(r.Big, 0) }

func nth(res *Result, i int) *TargetResult {
	if res == nil || len(res.Targets) <= i {
		return &TargetResult{}
	}
	return &res.Targets[i]
}

// Use is what process p spent in phase.
func (t *TargetResult) Use(p, phase string) Usage { return t.Procs[p][phase] }

// Use is what process p spent in phase of a relay run.
func (r *RelayResult) Use(p, phase string) Usage {
	if r == nil {
		return Usage{}
	}
	return r.Procs[p][phase]
}

// PerMessage is process p's CPU time per message in a relay phase, in µs.
func (r *RelayResult) PerMessage(p, phase string) float64 {
	if r == nil || r.N == 0 {
		return 0
	}
	return r.Procs[p][phase].CPUSeconds * 1e6 / float64(r.N)
}
