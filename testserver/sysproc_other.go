//go:build !linux

package testserver

import "syscall"

// sysProcAttr: nothing special outside Linux (Prosody tests run on Linux/CI).
func sysProcAttr() *syscall.SysProcAttr { return nil }
