package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The issue-17 comparison as the report shows it: medians over the rounds,
// CPU per message over all of them, ratios relay/server and the verdicts
// on the targets; LoadReport finds each server's results.
func TestOfflineReport(t *testing.T) {
	round := func(rate, flush, first, srvEnq, srvFlush float64, kept string) *RelayResult {
		return &RelayResult{N: 100, EnqueueRate: rate, FlushSeconds: flush, FirstSeconds: first, KeptBy: map[string]int{kept: 100},
			Procs: map[string]map[string]Usage{"prosody": {"enqueue": {CPUSeconds: srvEnq}, "flush": {CPUSeconds: srvFlush}}}}
	}
	res := &OfflineResult{Server: "prosody", N: 100, Rounds: 2,
		Offline: []*RelayResult{round(100, 1.0, 0.4, 0.1, 0.05, "localhost"), round(300, 3.0, 0.6, 0.1, 0.05, "localhost")},
		Relay:   []*RelayResult{round(400, 1.0, 0.01, 0.05, 0.1, "upload.localhost"), round(400, 1.0, 0.03, 0.05, 0.1, "upload.localhost")},
	}
	if got := res.Median(SideOffline, "enqueue_per_s"); got != 200 {
		t.Errorf("median accept rate %v, want 200", got)
	}
	if got := res.PerMessage(SideRelay, "prosody", "flush"); got != 1000 {
		t.Errorf("prosody CPU per flushed relay message %v µs, want 1000", got)
	}
	md := res.Markdown()
	for _, want := range []string{
		"| accept, messages/s (median) | 200 | 400 | 2.00 | ≥ 1.5: met |",
		"| flush: presence to last message, s (median) | 2.00 | 1.00 | 0.50 | ≤ 1.0: met |",
		"| presence to first message, ms (median) | 500.0 | 20.0 | 0.04 | relay ≤ 50 ms: met |",
		"| prosody CPU µs per flushed message | 500 | 1000 | 2.00 | ≤ 1.0: not met |",
		"| received with a delay from | localhost: 200 | upload.localhost: 200 | | |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "offline-prosody.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := res.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := LoadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Offline) != 1 || r.Offline[0].Markdown() != md {
		t.Errorf("LoadReport: %d offline results, want the one written", len(r.Offline))
	}
}
