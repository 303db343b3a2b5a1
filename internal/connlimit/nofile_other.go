//go:build !unix

package connlimit

// OpenFiles reports no limit on open files where there is no RLIMIT_NOFILE.
func OpenFiles() (uint64, bool) { return 0, false }
