package testserver

import (
	"syscall"
	"testing"
	"time"

	"mediaslot/internal/procstat"
)

// SelfCPU is the user and system CPU this process has used so far, for
// benchmarks that report CPU per operation.
func SelfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPU is the user and system CPU the cluster has used so far: the
// postmaster and its children (connection backends, WAL writer,
// checkpointer, and the backends that ended), so that a benchmark can
// report the database's CPU per operation beside its own.
func (p *Postgres) CPU(tb testing.TB) time.Duration {
	d, err := procstat.Tree(p.PID())
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
