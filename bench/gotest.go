package bench

import (
	"bytes"
	"io"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// GoBench holds `go test -bench` results: for each benchmark (name without
// the -GOMAXPROCS suffix, with its package), every run's metrics by unit.
type GoBench struct {
	runs  map[string][]map[string]float64
	order []string
}

// ParseGoBench reads the output of `go test -bench` (several packages,
// -count N) with benchfmt. Metrics keep the units the benchmarks print
// ("ns/op", "MB/s"), not benchfmt's tidied ones, since the report asks
// for them by those names. Lines benchfmt cannot parse are skipped, as
// `go test` mixes log output with results.
func ParseGoBench(r io.Reader) (*GoBench, error) {
	g := &GoBench{runs: map[string][]map[string]float64{}}
	br := benchfmt.NewReader(r, "go test -bench")
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		name := strings.TrimPrefix(res.GetConfig("pkg"), "mediaslot/") + ".Benchmark" + benchName(res.Name)
		m := make(map[string]float64, len(res.Values))
		for _, v := range res.Values {
			if v.OrigUnit != "" {
				m[v.OrigUnit] = v.OrigValue
			} else {
				m[v.Unit] = v.Value
			}
		}
		if _, seen := g.runs[name]; !seen {
			g.order = append(g.order, name)
		}
		g.runs[name] = append(g.runs[name], m)
	}
	return g, br.Err()
}

// benchName is a benchmark's full name (sub-benchmarks included) without
// its -GOMAXPROCS suffix, so runs on machines of different sizes compare.
func benchName(n benchfmt.Name) string {
	base, parts := n.Parts()
	b := bytes.Clone(base)
	for _, p := range parts {
		if p[0] != '-' {
			b = append(b, p...)
		}
	}
	return string(b)
}

// Get returns the median over runs of a benchmark's metric, 0 if absent.
// name is "package.BenchmarkName", e.g. "upload.BenchmarkIssue".
func (g *GoBench) Get(name, unit string) float64 {
	if g == nil {
		return 0
	}
	var vs []float64
	for _, m := range g.runs[name] {
		if v, ok := m[unit]; ok {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return median(vs)
}

// Runs is how many times a benchmark ran.
func (g *GoBench) Runs(name string) int {
	if g == nil {
		return 0
	}
	return len(g.runs[name])
}

// Names lists the benchmarks in the order they first appeared.
func (g *GoBench) Names() []string {
	if g == nil {
		return nil
	}
	return g.order
}
