package offline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/offline"
	"mediaslot/offline/queuetest"
)

// BenchmarkEnqueueParallel measures durable enqueues of 8 KB stanzas from
// 64 concurrent senders per CPU, each stanza to one of 1000 recipients, as
// the relay sees them when many clients send at once. The file starts
// empty, so it grows throughout, which costs more than reusing the pages
// of delivered stanzas in a server's steady state.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, o := range offline.DBOptions {
		b.Run(o.Name, func(b *testing.B) {
			q, _ := offline.OpenFile(b, filepath.Join(b.TempDir(), "q.db"), o.Opt, offline.NoLimits)
			queuetest.BenchEnqueue(b, q, nil)
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
	options := []offline.DBOption{
		offline.DBOptions[0],
		{Name: "mapfreelist-synced", Opt: &bolt.Options{FreelistType: bolt.FreelistMapType}},
		offline.DBOptions[1],
	}
	for _, o := range options {
		b.Run(o.Name, func(b *testing.B) {
			q, _ := offline.OpenFile(b, filepath.Join(b.TempDir(), "q.db"), o.Opt, offline.NoLimits)
			queuetest.Fill(b, q, "old@example.org", make([]byte, queuetest.BenchStanza), purged)
			if n, err := q.Purge(context.Background(), time.Now().Add(offline.DefaultTTL+time.Hour)); err != nil || n != purged {
				b.Fatalf("Purge = %d, %v", n, err)
			}
			queuetest.BenchEnqueue(b, q, nil)
		})
	}
}

// BenchmarkDrain measures draining 10,000 queued 8 KB stanzas of one
// recipient, deletions included.
func BenchmarkDrain(b *testing.B) {
	const queued = 10_000
	q, _ := offline.OpenFile(b, filepath.Join(b.TempDir(), "q.db"), nil, offline.NoLimits)
	stanza := make([]byte, queuetest.BenchStanza)
	for range b.N {
		b.StopTimer()
		queuetest.Fill(b, q, "bob@example.org", stanza, queued)
		b.StartTimer()
		n, err := q.Drain(context.Background(), "bob@example.org", func(offline.Entry) error { return nil }, nil)
		if err != nil || n != queued {
			b.Fatalf("Drain = %d, %v", n, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/10k")
}
