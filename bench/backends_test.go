package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const backendsOutput = `pkg: mediaslot/upload
BenchmarkIssue/bbolt-2         	   10000	    100000 ns/op	       50.00 cpu-µs/slot	     10000 slots/s
BenchmarkIssue/postgres-2      	    2000	    500000 ns/op	       40.00 cpu-µs/slot	       120.0 db-cpu-µs/slot	      2000 slots/s
BenchmarkIssueParallel/bbolt-2 	   20000	     50000 ns/op	       30.00 cpu-µs/slot	     20000 slots/s
pkg: mediaslot/offline/pgqueue
BenchmarkQueue/bbolt/enqueue-2   	   20000	     50000 ns/op	        80.00 client-cpu-µs/op	     20000 stanzas/s
BenchmarkQueue/postgres/enqueue-2	   20000	    100000 ns/op	        60.00 client-cpu-µs/op	       140.0 server-cpu-µs/op	     10000 stanzas/s
`

// The report puts each operation's bbolt and PostgreSQL results in one
// row with their ratios, the server's CPU added to mediaslot's, and says
// which were not measured (PostgreSQL missing, a benchmark that failed).
func TestReportBackends(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fileGoBench), []byte(backendsOutput), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| slot issue, one at a time (`upload.BenchmarkIssue`) | 10000 slots/s | 2000 slots/s | 0.20 | 50 | 40 + 120 | 3.20 |",
		"| slot issue, 16 in flight (`upload.BenchmarkIssueParallel`) | 20000 slots/s | not measured | - | 30 | - | - |",
		"| relay enqueue, 128 writers (`offline/pgqueue.BenchmarkQueue …/enqueue`) | 20000 stanzas/s | 10000 stanzas/s | 0.50 | 80 | 60 + 140 | 2.50 |",
		"| relay drain, one recipient (`offline/pgqueue.BenchmarkQueue …/drain`) | not measured | not measured | - | - | - | - |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks\n%s", want)
		}
	}
	if t.Failed() {
		i := strings.Index(b.String(), "## Data backends")
		t.Logf("the section:\n%s", b.String()[i:min(len(b.String()), i+3000)])
	}
}
