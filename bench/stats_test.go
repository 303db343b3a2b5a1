package bench

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(d)
	if l.N != 100 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Min != 1 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("Summarize = %+v", l)
	}
	if (Summarize(nil) != Latency{}) {
		t.Fatal("empty sample")
	}
	if r := NewRate([]float64{3, 1, 2, 10}); r.Median != 2.5 || r.Min != 1 || r.Max != 10 {
		t.Fatalf("NewRate = %+v", r)
	}
}

func TestPatternRoundTrip(t *testing.T) {
	var c patternChecker
	// odd copy sizes, so that the checker sees every alignment
	if _, err := io.CopyBuffer(struct{ io.Writer }{&c}, Body(1<<20+7), make([]byte, 4093)); err != nil || c.bad != nil || c.off != 1<<20+7 {
		t.Fatalf("pattern does not check against itself: %v %v", err, c.bad)
	}
	b, _ := io.ReadAll(Body(1000))
	b[700]++
	c = patternChecker{}
	_, _ = c.Write(b)
	if c.bad == nil || !strings.Contains(c.bad.Error(), "700") {
		t.Fatalf("changed byte not found: %v", c.bad)
	}
}

const goBenchOutput = `goos: linux
pkg: mediaslot/upload
BenchmarkIssue-2   	    7681	    476683 ns/op	       200.0 cpu-µs/slot	      2098 slots/s	   16954 B/op	     107 allocs/op
pkg: mediaslot/bench
BenchmarkPutVsBare-2   	      10	 163933024 ns/op	 818.74 MB/s	       814.6 bare-MB/s	       824.7 mediaslot-MB/s	         1.013 mediaslot/bare
BenchmarkPutVsBare-2   	      10	 152127145 ns/op	 882.27 MB/s	       904.8 bare-MB/s	       863.3 mediaslot-MB/s	         0.9542 mediaslot/bare
BenchmarkPutVsBare-2   	      10	 148427927 ns/op	 904.26 MB/s	       914.7 bare-MB/s	       896.2 mediaslot-MB/s	         0.9798 mediaslot/bare
PASS
pkg: mediaslot/offline
BenchmarkEnqueueParallel
    bench_test.go:12: a log line
BenchmarkEnqueueParallel/mapfreelist-2         	   50000	     21000 ns/op	     47619 stanzas/s
PASS
`

func TestParseGoBench(t *testing.T) {
	g, err := ParseGoBench(strings.NewReader(goBenchOutput))
	if err != nil {
		t.Fatal(err)
	}
	if v := g.Get("upload.BenchmarkIssue", "slots/s"); v != 2098 {
		t.Errorf("slots/s = %v", v)
	}
	if v := g.Get("bench.BenchmarkPutVsBare", "mediaslot/bare"); v != 0.9798 || g.Runs("bench.BenchmarkPutVsBare") != 3 {
		t.Errorf("median ratio = %v over %d runs", v, g.Runs("bench.BenchmarkPutVsBare"))
	}
	if v := g.Get("offline.BenchmarkEnqueueParallel/mapfreelist", "stanzas/s"); v != 47619 {
		t.Errorf("sub-benchmark stanzas/s = %v", v)
	}
	if v := g.Get("upload.BenchmarkIssue", "ns/op"); v != 476683 {
		t.Errorf("ns/op = %v, want the unit as printed", v)
	}
	if n := g.Names(); !slices.Equal(n, []string{"upload.BenchmarkIssue", "bench.BenchmarkPutVsBare", "offline.BenchmarkEnqueueParallel/mapfreelist"}) {
		t.Errorf("names = %q", n)
	}
	if v := g.Get("nothing.BenchmarkX", "ns/op"); v != 0 {
		t.Errorf("missing benchmark = %v", v)
	}
}

// A results directory with nothing or only some files still renders, saying
// what was not measured.
func TestReportPartial(t *testing.T) {
	dir := t.TempDir()
	render := func() string {
		r, err := LoadReport(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := r.WriteReport(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if out := render(); !strings.Contains(out, "Not measured in this run") {
		t.Errorf("empty results: %s", out)
	}
	res := &Result{N: 10, Inflight: 16, Rounds: 1, Size: 1 << 20, Targets: []TargetResult{
		{Name: "mediaslot", SlotLatency: Latency{P50: 0.5}, SlotRate: NewRate([]float64{3000}), HTTPResult: HTTPResult{Put: NewRate([]float64{500})}},
		{Name: "baseline", SlotLatency: Latency{P50: 0.4}, SlotRate: NewRate([]float64{2000}), HTTPResult: HTTPResult{Put: NewRate([]float64{3})}},
	}}
	var b bytes.Buffer
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileDisk), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "relay.errors"), []byte("stalled\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := render()
	for _, want := range []string{"| slot p50 ≤ Prosody's mod_http_file_share | end to end, same Prosody | 0.50 ms vs 0.40 ms (1.25×) | **missed** |",
		"disk PUT ≥ 2× Prosody's", "`relay`: stalled"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// PairedRatio is the median of the per-round ratios, not the ratio of the
// medians; rounds without both values are left out.
func TestPairedRatio(t *testing.T) {
	a := NewRate([]float64{100, 60, 70})
	b := NewRate([]float64{90, 100, 50}) // ratios 1.11, 0.6, 1.4; medians 70 and 90
	if got := a.PairedRatio(b); math.Abs(got-100.0/90) > 1e-9 {
		t.Errorf("PairedRatio = %v, want 1.11", got)
	}
	if got := NewRate([]float64{90, 0, 80}).PairedRatio(NewRate([]float64{100, 100, 100, 100})); math.Abs(got-0.85) > 1e-9 {
		t.Errorf("with a missing round: %v, want 0.85", got)
	}
	if got := (Rate{}).PairedRatio(NewRate([]float64{1})); got != 0 {
		t.Errorf("no pairs: %v", got)
	}
}
