package testserver

import (
	"os"
	"os/exec"
	"time"
)

// Stop sends sig to cmd's started process and waits up to grace for it to
// exit; past grace it kills the process and waits for that. It reports
// whether the process exited within grace. Nothing else may Wait for cmd.
func Stop(cmd *exec.Cmd, sig os.Signal, grace time.Duration) bool {
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}
