//go:build unix

package testserver

import (
	"errors"
	"os"
	"syscall"
)

// lockFile waits for an exclusive flock on path (created if missing) and
// returns its release. flock(1) in scripts/gotool.sh takes the same lock.
// The kernel drops it when the process dies, so a killed build leaves no
// stale lock behind.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
