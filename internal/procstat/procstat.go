// Package procstat reads a process's CPU time from /proc/PID/stat (Linux),
// for the benchmarks that say what each process of a stack spent: one
// process (mediaslot, ejabberd's VM) or a process with its children
// (PostgreSQL's postmaster and its backends, which are separate processes).
// The benchmarks and the test harness share it so that they count alike.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of the times in /proc/PID/stat: 100 per
// second on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// stat is what CPU and Tree read of one /proc/PID/stat.
type stat struct {
	ppid int
	cpu  time.Duration // utime + stime: the process's own threads
	// reaped is cutime + cstime: its children that exited and that it
	// waited for (a postmaster's backends that ended).
	reaped time.Duration
}

func readStat(path string) (stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return stat{}, err
	}
	// The command (field 2) is in parentheses and may hold spaces and
	// parentheses; the fields after the last ')' are fixed: state (3),
	// ppid (4), ..., utime (14), stime (15), cutime (16), cstime (17).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return stat{}, fmt.Errorf("%s: unexpected format", path)
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return stat{
		ppid:   int(n(1)),
		cpu:    time.Duration(n(11)+n(12)) * clockTick,
		reaped: time.Duration(n(13)+n(14)) * clockTick,
	}, nil
}

// CPU is the user and system CPU time process pid has used so far, all
// its threads.
func CPU(pid int) (time.Duration, error) {
	s, err := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	return s.cpu, err
}

// Tree is the CPU time of process pid, of its children alive now and of
// those it has reaped: for PostgreSQL, the postmaster, its connection
// backends, WAL writer and checkpointer, and the backends that ended
// (a backend's time moves into the postmaster's cutime when it exits, so
// the sum does not drop). Grandchildren are not counted.
func Tree(pid int) (time.Duration, error) {
	root, err := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	sum := root.cpu + root.reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		s, err := readStat(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || s.ppid != pid {
			continue // gone since ReadDir, or not a child
		}
		sum += s.cpu
	}
	return sum, nil
}
