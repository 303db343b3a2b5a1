package pgqueue

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
	"mediaslot/offline"
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
		{"bbolt", openBoltBench, nil},
		{"postgres", func(sub *testing.B) offline.Queue {
			if c == nil {
				c = testserver.StartPostgres(b) // for all the sub-benchmarks, and all their runs
			}
			b := sub
			q, pool := openQueue(b, c.NewDB(b), offline.NoLimits, time.Now)
			b.Cleanup(func() { q.Close(); pool.Close() })
			return q
		}, func(b *testing.B) time.Duration { return processTreeCPU(b, c.PID()) }},
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
					client0 = selfCPU(b)
				})
				ops := float64(b.N)
				b.ReportMetric(float64((selfCPU(b)-client0).Microseconds())/ops, "client-cpu-µs/op")
				if be.serverCPU != nil {
					b.ReportMetric(float64((be.serverCPU(b)-server0).Microseconds())/ops, "server-cpu-µs/op")
				}
			})
		}
	}
}

// openBoltBench opens a bbolt queue as `mediaslot serve` does.
func openBoltBench(b *testing.B) offline.Queue {
	opt := dbfile.Options()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "mediaslot.db"), 0o600, &opt)
	if err != nil {
		b.Fatal(err)
	}
	w := groupcommit.New(db)
	b.Cleanup(func() { w.Close(); db.Close() })
	q, err := offline.Open(db, w, offline.NoLimits)
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// selfCPU returns the user and system CPU this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ),
// 100 per second on every Linux mediaslot runs on.
const clockTick = time.Second / 100

// processTreeCPU returns the user and system CPU of process pid and its
// children (the postmaster and its backends, WAL writer, checkpointer):
// utime and stime of /proc/PID/stat.
func processTreeCPU(b *testing.B, pid int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone since ReadDir
		}
		// The fields after the command, which is in parentheses and may
		// hold spaces: state ppid ... utime (14th field) stime (15th).
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if self, _ := strconv.Atoi(e.Name()); self != pid && ppid != pid {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += utime + stime
	}
	return time.Duration(ticks) * clockTick
}
