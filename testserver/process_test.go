package testserver

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProcess covers the paths the servers rarely take: an exit during
// startup, a port that never listens, SIGTERM ignored until SIGKILL, and
// the log appended to across runs.
func TestProcess(t *testing.T) {
	sh := RequireTool(t, "sh")
	log := filepath.Join(t.TempDir(), "out.log")
	var stopped *process
	stopped.stop(t, "none", time.Second) // no-op
	if stopped.pid() != 0 {
		t.Errorf("nil process: pid %d", stopped.pid())
	}

	p, err := startProcess(exec.Command(sh, "-c", "echo one; exit 3"), log)
	if err != nil {
		t.Fatal(err)
	}
	err = p.waitFor("sh", time.Now().Add(5*time.Second), func() (bool, error) { return false, errors.New("not yet") })
	if err == nil || err.Error() != "sh exited during startup: exit status 3" {
		t.Errorf("waitFor on an exiting process: %v", err)
	}
	p.stop(t, "sh", time.Minute) // exited already: returns at once

	// Ignoring SIGTERM survives exec; "two" is written after the trap is set.
	p, err = startProcess(exec.Command(sh, "-c", "trap '' TERM; echo two; exec sleep 30"), log)
	if err != nil {
		t.Fatal(err)
	}
	if p.pid() == 0 {
		t.Error("pid 0 of a running process")
	}
	err = p.waitFor("sh", time.Now().Add(5*time.Second), func() (bool, error) {
		if !strings.Contains(tail(log, 10), "two") {
			return false, errors.New("no output")
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := FreePorts(t, 1)[0]
	err = p.waitListening("sh", time.Now().Add(100*time.Millisecond), 100*time.Millisecond, addr)
	if want := "sh did not listen on " + addr + " within 100ms: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("waitListening: %v, want %q...", err, want)
	}
	start := time.Now()
	p.stop(t, "sh", 200*time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("stop of a process ignoring SIGTERM took %v, want the 200ms grace", d)
	}
	if got := tail(log, 10); got != "one\ntwo" {
		t.Errorf("log %q, want both runs appended", got)
	}
}
