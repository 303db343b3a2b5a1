//go:build !linux

package testserver

import (
	"errors"
	"os/exec"
	"syscall"
)

// sysProcAttr: nothing special outside Linux (Prosody tests run on Linux/CI).
func sysProcAttr() *syscall.SysProcAttr { return nil }

// runAs is Linux-only: elsewhere run the tests as an ordinary user.
func runAs(*exec.Cmd, uint32, uint32) error {
	return errors.New("running a server as another user is only supported on Linux: run the tests as a non-root user")
}
