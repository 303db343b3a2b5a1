//go:build linux

package testserver

import "syscall"

// sysProcAttr puts Prosody into its own process group (a ^C in the terminal
// reaches only the test binary, whose cleanup stops Prosody) and makes the
// kernel send it SIGTERM if the test binary dies without running its cleanup
// (go test -timeout panic, SIGKILL), so no Prosody is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
