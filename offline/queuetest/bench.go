package queuetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"mediaslot/offline"
)

// BenchStanza is the size of the stanzas the benchmarks queue: a relayed
// message with a thumbnail.
const BenchStanza = 8 << 10

// BenchEnqueue measures committed enqueues of BenchStanza-byte stanzas
// from 64 concurrent senders per CPU, each stanza to one of 1000
// recipients, as the relay sees them when many clients send at once; it
// reports stanzas/s. q must have no caps in the way (offline.NoLimits).
//
// start, if not nil, runs just before the timed part (to read CPU
// counters, say).
func BenchEnqueue(b *testing.B, q offline.Queue, start func()) {
	stanza := make([]byte, BenchStanza)
	var n atomic.Int64
	b.SetBytes(BenchStanza)
	b.SetParallelism(64)
	if start != nil {
		start()
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := fmt.Sprintf("user%d@example.org", n.Add(1)%1000)
			if err := q.Enqueue(context.Background(), "s@example.org/x", []string{r}, stanza); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "stanzas/s")
}

// BenchDrain measures draining b.N queued BenchStanza-byte stanzas of one
// recipient, deletions included, and reports stanzas/s. The stanzas are
// queued first, untimed; then start, if not nil, runs.
func BenchDrain(b *testing.B, q offline.Queue, start func()) {
	Fill(b, q, "bob@example.org", make([]byte, BenchStanza), b.N)
	b.SetBytes(BenchStanza)
	if start != nil {
		start()
	}
	b.ResetTimer()
	n, err := q.Drain(context.Background(), "bob@example.org", func(offline.Entry) error { return nil }, nil)
	if err != nil || n != b.N {
		b.Fatalf("Drain = %d, %v", n, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "stanzas/s")
}

// Fill enqueues n copies of stanza for recipient, from 64 goroutines so
// that it takes few commits.
func Fill(b testing.TB, q offline.Queue, recipient string, stanza []byte, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := q.Enqueue(context.Background(), "s", []string{recipient}, stanza); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
