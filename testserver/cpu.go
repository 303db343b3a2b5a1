package testserver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ),
// 100 per second on every Linux mediaslot runs on.
const clockTick = time.Second / 100

// CPU is the user and system CPU the cluster has used so far: the
// postmaster and its children (connection backends, WAL writer,
// checkpointer), from utime and stime of /proc/PID/stat, so that a
// benchmark can report the database's CPU per operation beside its own.
func (p *Postgres) CPU(tb testing.TB) time.Duration {
	pid := p.PID()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var ticks int64
	for _, e := range entries {
		self, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone since ReadDir
		}
		// The fields after the command, which is in parentheses and may
		// hold spaces and parentheses: state ppid ... utime (14th field)
		// stime (15th).
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); self != pid && ppid != pid {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += utime + stime
	}
	return time.Duration(ticks) * clockTick
}
