package bench

import (
	"maps"
	"math"
	"slices"
	"time"
)

// Latency summarises a sample of durations, in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Mean float64 `json:"mean_ms"`
	Min  float64 `json:"min_ms"`
	Max  float64 `json:"max_ms"`
}

// Summarize returns the percentiles (nearest rank) of d.
func Summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	ms := make([]float64, len(d))
	var sum float64
	for i, x := range d {
		ms[i] = float64(x) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Latency{
		N:    len(ms),
		P50:  percentile(ms, 50),
		P90:  percentile(ms, 90),
		P99:  percentile(ms, 99),
		Mean: sum / float64(len(ms)),
		Min:  ms[0],
		Max:  ms[len(ms)-1],
	}
}

// percentile of sorted xs by the nearest-rank method.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Rate is a throughput measured in several rounds.
type Rate struct {
	Rounds []float64 `json:"rounds"` // one value per round
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

// NewRate summarises per-round values.
func NewRate(rounds []float64) Rate {
	if len(rounds) == 0 {
		return Rate{}
	}
	s := slices.Sorted(slices.Values(rounds))
	return Rate{Rounds: rounds, Median: median(s), Min: s[0], Max: s[len(s)-1]}
}

// PairedRatio is the median over rounds of r's value divided by b's in the
// same round. Alternating rounds pair each of r's values with one of b's
// taken under the same conditions (page cache, writeback, the other
// processes), so the median of the pairs' ratios is steadier than the
// ratio of the two medians when conditions drift during a run. It is 0
// when no round has both values.
func (r Rate) PairedRatio(b Rate) float64 {
	var q []float64
	for i := range min(len(r.Rounds), len(b.Rounds)) {
		if v := ratio(r.Rounds[i], b.Rounds[i]); v > 0 {
			q = append(q, v)
		}
	}
	slices.Sort(q)
	return median(q)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// ratio is a/b, or 0 when either is unknown.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
