package testserver

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Start starts versitygw again after Stop: same port, data directory,
// bucket and credentials, so objects stored before are served again. It
// fails the test if versitygw is running or does not come up.
func (s *S3) Start() {
	s.t.Helper()
	bin := versityGWBinary(s.t) // cached by VersityGW
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("testserver: Start: versitygw already running (pid %d)", s.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatalf("testserver: %v", err)
	}
	addr := strings.TrimPrefix(s.Endpoint, "http://")
	cmd := exec.Command(bin, "--port", addr, "--region", s.Region,
		"--quiet", "--keep-alive", "posix", s.Dir)
	cmd.Env = append(versityGWEnv(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("testserver: starting versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(); err != nil {
		s.stopLockedS3()
		s.t.Fatalf("testserver: %v", err)
	}
}

// Restart stops and starts versitygw again (same port, data and credentials).
func (s *S3) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// stopLockedS3 kills a versitygw that failed to come up; s.mu is held.
func (s *S3) stopLockedS3() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(versityGWStop):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}
