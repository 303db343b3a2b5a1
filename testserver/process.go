package testserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is one run of a server binary (Prosody, ejabberd, versitygw).
// A server holds a *process while it runs and nil while it is stopped; the
// methods that read it treat nil as "not running".
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited and its log is closed
}

// startProcess starts cmd with stdout and stderr appended to logPath
// (created if missing: logs survive restarts) and the attributes of
// sysProcAttr (or those runAs set), and waits for it in the background.
func startProcess(cmd *exec.Cmd, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = sysProcAttr()
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended (a nil p has).
func (p *process) exited() bool {
	if p == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pid returns the process id, or 0 if p is nil.
func (p *process) pid() int {
	if p == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop sends SIGTERM, waits up to grace for the exit, then SIGKILLs and
// waits for that. It returns at once if the process has already exited, and
// is a no-op on a nil p.
func (p *process) stop(t testing.TB, name string, grace time.Duration) {
	p.stopWith(t, name, syscall.SIGTERM, grace)
}

// stopWith is stop with another first signal (PostgreSQL's fast shutdown is
// SIGINT: its SIGTERM waits for the clients to leave).
func (p *process) stopWith(t testing.TB, name string, sig syscall.Signal, grace time.Duration) {
	if p == nil {
		return
	}
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	t.Logf("testserver: %s (pid %d) ignored SIGTERM for %v, killing it", name, p.pid(), grace)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitFor calls check every 20 ms until check reports done, the process
// exits or deadline passes. check returns done with the outcome (nil:
// ready), or !done with why it is not ready yet, which is the error once
// deadline has passed.
func (p *process) waitFor(name string, deadline time.Time, check func() (done bool, err error)) error {
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during startup: %v", name, p.cmd.ProcessState)
		default:
		}
		done, err := check()
		if done || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitListening waits until every one of addrs accepts a TCP connection.
// timeout is only for the message: deadline may be shared with other waits.
func (p *process) waitListening(name string, deadline time.Time, timeout time.Duration, addrs ...string) error {
	for _, addr := range addrs {
		err := p.waitFor(name, deadline, func() (bool, error) {
			c, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
			if err != nil {
				return false, fmt.Errorf("%s did not listen on %s within %v: %v", name, addr, timeout, err)
			}
			c.Close()
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
