package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"mediaslot/internal/procstat"
)

// Proc watches a server process through /proc (Linux): its CPU time, its
// resident memory and its I/O, so that a benchmark can say what a slot or
// a megabyte cost the server, not only the client's view of it.
type Proc struct {
	Name string
	PID  int
	// Children counts the CPU time of its children too, alive or ended:
	// PostgreSQL's postmaster and its backends (procstat.Tree). Memory
	// and I/O stay the process's own.
	Children bool
}

// Self is the bench process itself, watched as "client": the load
// generator's share of the machine.
func Self() Proc { return Proc{Name: clientProc, PID: os.Getpid()} }

// ProcSample is one reading of a process's counters.
type ProcSample struct {
	CPU      time.Duration // user + system, all threads, since start
	ReadIO   int64         // rchar: bytes read by syscalls (files and sockets)
	WriteIO  int64         // wchar: bytes written by syscalls
	RSS      int64         // VmRSS, bytes
	HWM      int64         // VmHWM: peak RSS since start or the last ResetPeak
	RSSAnon  int64         // RssAnon: heap, stacks, anonymous mappings
	RSSFile  int64         // RssFile: mapped files (bbolt's mmap), reclaimable
	SampleAt time.Time
}

// Sample reads the process's counters.
func (p Proc) Sample() (ProcSample, error) {
	s := ProcSample{SampleAt: time.Now()}
	cpu := procstat.CPU
	if p.Children {
		cpu = procstat.Tree
	}
	var err error
	if s.CPU, err = cpu(p.PID); err != nil {
		return s, err
	}
	if err := p.readStatus(&s); err != nil {
		return s, err
	}
	// /proc/PID/io needs the same user or root; without it the I/O stays 0.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p.PID)); err == nil {
		kv := keyValues(b)
		s.ReadIO, s.WriteIO = kv["rchar"], kv["wchar"]
	}
	return s, nil
}

func (p Proc) readStatus(s *ProcSample) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		return err
	}
	kv := keyValues(b)
	s.RSS, s.HWM = kv["VmRSS"]*1024, kv["VmHWM"]*1024
	s.RSSAnon, s.RSSFile = kv["RssAnon"]*1024, kv["RssFile"]*1024
	return nil
}

// keyValues reads "Key: 123 kB" lines.
func keyValues(b []byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out
}

// ResetPeak restarts VmHWM from the current RSS (writing 5 to clear_refs;
// needs the same user or root). It reports whether that worked: if not,
// peaks are since the process started.
func (p Proc) ResetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID), []byte("5"), 0) == nil
}

// Usage is what a process spent during one phase of a benchmark.
type Usage struct {
	CPU time.Duration `json:"-"`
	// CPUSeconds is CPU (user + system) over the phase.
	CPUSeconds float64 `json:"cpu_s"`
	ReadBytes  int64   `json:"read_bytes"`  // rchar delta
	WriteBytes int64   `json:"write_bytes"` // wchar delta
	// PeakRSS is VmHWM at the end of the phase (reset at its start when
	// PeakReset); PeakAnon and PeakFile are the highest RssAnon and
	// RssFile seen by sampling every 20 ms.
	PeakRSS   int64 `json:"peak_rss_bytes"`
	PeakAnon  int64 `json:"peak_anon_bytes"`
	PeakFile  int64 `json:"peak_file_bytes"`
	PeakReset bool  `json:"peak_reset"`
}

// Watch measures a phase: call the returned function at its end.
func (p Proc) Watch() (stop func() (Usage, error)) {
	reset := p.ResetPeak()
	before, err0 := p.Sample()
	var mu sync.Mutex
	peakAnon, peakFile := before.RSSAnon, before.RSSFile
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var s ProcSample
			if p.readStatus(&s) == nil {
				mu.Lock()
				peakAnon, peakFile = max(peakAnon, s.RSSAnon), max(peakFile, s.RSSFile)
				mu.Unlock()
			}
		}
	}()
	return func() (Usage, error) {
		close(done)
		<-finished
		after, err := p.Sample()
		if err0 != nil {
			err = err0
		}
		if err != nil {
			return Usage{}, fmt.Errorf("watching %s (pid %d): %w", p.Name, p.PID, err)
		}
		mu.Lock()
		defer mu.Unlock()
		u := Usage{
			CPU:        after.CPU - before.CPU,
			ReadBytes:  after.ReadIO - before.ReadIO,
			WriteBytes: after.WriteIO - before.WriteIO,
			PeakRSS:    after.HWM,
			PeakAnon:   max(peakAnon, after.RSSAnon),
			PeakFile:   max(peakFile, after.RSSFile),
			PeakReset:  reset,
		}
		u.CPUSeconds = u.CPU.Seconds()
		return u, nil
	}
}

// watch measures one phase of several processes.
type watch struct {
	procs []Proc
	stops []func() (Usage, error)
}

func startWatch(procs []Proc) watch {
	w := watch{procs: procs}
	for _, p := range procs {
		w.stops = append(w.stops, p.Watch())
	}
	return w
}

// end adds what each process spent in the phase to into[process][phase].
func (w watch) end(into map[string]map[string]Usage, phase string) error {
	var errs []error
	for i, p := range w.procs {
		u, err := w.stops[i]()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if into[p.Name] == nil {
			into[p.Name] = map[string]Usage{}
		}
		into[p.Name][phase] = addUsage(into[p.Name][phase], u)
	}
	return errors.Join(errs...)
}

func addUsage(a, b Usage) Usage {
	a.CPU += b.CPU
	a.CPUSeconds = a.CPU.Seconds()
	a.ReadBytes += b.ReadBytes
	a.WriteBytes += b.WriteBytes
	a.PeakRSS = max(a.PeakRSS, b.PeakRSS)
	a.PeakAnon = max(a.PeakAnon, b.PeakAnon)
	a.PeakFile = max(a.PeakFile, b.PeakFile)
	a.PeakReset = b.PeakReset
	return a
}
