package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const benchStanza = 8 << 10

// BenchmarkEnqueueParallel measures durable enqueues of 8 KB stanzas from
// 64 concurrent senders per CPU, each stanza to one of 1000 recipients, as
// the relay sees them when many clients send at once. The file starts
// empty, so it grows throughout, which costs more than reusing the pages
// of delivered stanzas in a server's steady state.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, o := range dbOptions {
		b.Run(o.Name, func(b *testing.B) {
			enqueueParallel(b, openQueue(b, filepath.Join(b.TempDir(), "q.db"), o.Opt, NoLimits))
		})
	}
}

// BenchmarkEnqueueAfterPurge is BenchmarkEnqueueParallel on a file from
// which 20,000 stanzas (240 MB, 60,000 pages) were just purged, with the
// free list written at every commit (bbolt's default, and the map freelist
// synced) or not (serveOptions): a written list costs every commit in
// proportion to the free pages. Run it for a fixed count well under
// 20,000 (-benchtime 4000x), so that the list stays long.
func BenchmarkEnqueueAfterPurge(b *testing.B) {
	const purged = 20_000
	options := []dbOption{
		dbOptions[0],
		{"mapfreelist-synced", &bolt.Options{FreelistType: bolt.FreelistMapType}},
		dbOptions[1],
	}
	for _, o := range options {
		b.Run(o.Name, func(b *testing.B) {
			q := openQueue(b, filepath.Join(b.TempDir(), "q.db"), o.Opt, NoLimits)
			fill(b, q, "old@example.org", make([]byte, benchStanza), purged)
			if n, err := q.Purge(context.Background(), time.Now().Add(DefaultTTL+time.Hour)); err != nil || n != purged {
				b.Fatalf("Purge = %d, %v", n, err)
			}
			enqueueParallel(b, q)
		})
	}
}

// enqueueParallel is the timed part of the enqueue benchmarks.
func enqueueParallel(b *testing.B, q testQueue) {
	stanza := make([]byte, benchStanza)
	var n atomic.Int64
	b.SetBytes(benchStanza)
	b.SetParallelism(64)
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

// BenchmarkDrain measures draining 10,000 queued 8 KB stanzas of one
// recipient, deletions included.
func BenchmarkDrain(b *testing.B) {
	const queued = 10_000
	q := newQueue(b, Limits{MaxMessages: queued, MaxBytes: queued * benchStanza})
	stanza := make([]byte, benchStanza)
	for range b.N {
		b.StopTimer()
		fill(b, q, "bob@example.org", stanza, queued)
		b.StartTimer()
		n, err := q.Drain(context.Background(), "bob@example.org", func(Entry) error { return nil }, nil)
		if err != nil || n != queued {
			b.Fatalf("Drain = %d, %v", n, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/10k")
}

// fill enqueues n copies of stanza for recipient, from 64 goroutines so
// that it takes few commits.
func fill(b *testing.B, q testQueue, recipient string, stanza []byte, n int) {
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
