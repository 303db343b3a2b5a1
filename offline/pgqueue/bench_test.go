package pgqueue_test

import (
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/offline/offlinetest"
	"mediaslot/offline/queuetest"
	"mediaslot/testserver"
)

// BenchmarkQueue measures the relay queue's enqueues and drains on bbolt
// (a file opened as serve opens it) and on PostgreSQL (a private cluster)
// side by side, with the CPU each operation costs mediaslot (client) and,
// on PostgreSQL, the database server (its processes' utime+stime):
//
//	go test ./offline/pgqueue -run '^$' -bench BenchmarkQueue -benchtime 20000x
func BenchmarkQueue(b *testing.B) {
	var c *testserver.Postgres
	backends := []struct {
		name string
		open func(b *testing.B) offline.Queue
		// serverCPU returns the CPU the database server has used so
		// far; nil for bbolt, which runs inside mediaslot.
		serverCPU func(b *testing.B) time.Duration
	}{
		{"bbolt", func(b *testing.B) offline.Queue { return offlinetest.New(b, offline.NoLimits) }, nil},
		{"postgres", func(sub *testing.B) offline.Queue {
			if c == nil {
				c = testserver.StartPostgres(b) // for all the sub-benchmarks, and all their runs
			}
			return offlinetest.Postgres(sub, c.NewDB(sub), offline.NoLimits)
		}, func(b *testing.B) time.Duration { return c.CPU(b) }},
	}
	for _, be := range backends {
		for _, phase := range []struct {
			name string
			run  func(b *testing.B, q offline.Queue, start func())
		}{
			{"enqueue", queuetest.BenchEnqueue},
			{"drain", queuetest.BenchDrain},
		} {
			b.Run(be.name+"/"+phase.name, func(b *testing.B) {
				q := be.open(b)
				var server0, client0 time.Duration
				phase.run(b, q, func() {
					if be.serverCPU != nil {
						server0 = be.serverCPU(b)
					}
					client0 = testserver.SelfCPU(b)
				})
				ops := float64(b.N)
				b.ReportMetric(float64((testserver.SelfCPU(b)-client0).Microseconds())/ops, "client-cpu-µs/op")
				if be.serverCPU != nil {
					b.ReportMetric(float64((be.serverCPU(b)-server0).Microseconds())/ops, "server-cpu-µs/op")
				}
			})
		}
	}
}
