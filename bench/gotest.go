package bench

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"
)

// GoBench holds `go test -bench` results: for each benchmark (name without
// the -GOMAXPROCS suffix, with its package), every run's metrics by unit.
type GoBench struct {
	runs  map[string][]map[string]float64
	order []string
}

// ParseGoBench reads the output of `go test -bench` (several packages,
// -count N).
func ParseGoBench(r io.Reader) (*GoBench, error) {
	g := &GoBench{runs: map[string][]map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "mediaslot/")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		name = pkg + "." + name
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m[f[i+1]] = v
		}
		if _, seen := g.runs[name]; !seen {
			g.order = append(g.order, name)
		}
		g.runs[name] = append(g.runs[name], m)
	}
	return g, sc.Err()
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
