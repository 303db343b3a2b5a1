package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// A child's CPU time counts in its parent's Tree while it runs and after
// it ended and was reaped; CPU is the process's own only.
func TestTreeCountsChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	self := os.Getpid()
	own0, err := CPU(self)
	if err != nil {
		t.Fatal(err)
	}
	tree0, err := Tree(self)
	if err != nil {
		t.Fatal(err)
	}
	if tree0 < own0 {
		t.Errorf("Tree %v < CPU %v", tree0, own0)
	}
	// A child that spins for a while (shell arithmetic: CPU, not sleep).
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Skipf("sh: %v", err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	tree1, err := Tree(self)
	if err != nil {
		t.Fatal(err)
	}
	own1, err := CPU(self)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel counts in ticks: allow one each for utime and stime.
	if got := (tree1 - tree0) - (own1 - own0); got < child-2*clockTick {
		t.Errorf("Tree grew by %v besides the process's own, want the child's %v", got, child)
	}
	if child < 5*clockTick {
		t.Logf("the child used only %v: the check above proves little", child.Round(time.Millisecond))
	}
}

func TestCPUOfMissingProcess(t *testing.T) {
	if _, err := CPU(-1); err == nil {
		t.Error("CPU(-1): no error")
	}
}
