//go:build linux

package testserver

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts Prosody into its own process group (a ^C in the terminal
// reaches only the test binary, whose cleanup stops Prosody) and makes the
// kernel send it SIGTERM if the test binary dies without running its cleanup
// (go test -timeout panic, SIGKILL), so no Prosody is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// runAs makes cmd run as uid:gid (PostgreSQL refuses to run as root). The
// credentials are set in the child itself, not by a runuser in between, so
// the process started is the server and its pid is the server's. Go sets the
// parent-death signal after the switch, so it survives it.
func runAs(cmd *exec.Cmd, uid, gid uint32) error {
	attr := sysProcAttr()
	attr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	cmd.SysProcAttr = attr
	return nil
}
