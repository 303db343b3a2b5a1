//go:build linux

package boltmem

import (
	"os"
	"sync"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// unmap drops tx's database map from the process's page tables.
func unmap(tx *bolt.Tx) error {
	size := tx.Size() // the pages tx can reach, all within the map
	if size <= 0 {
		return nil
	}
	// The address is that of an mmap, not of Go memory: a plain number
	// for the kernel, so no unsafe.Pointer is needed.
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, tx.DB().Info().Data, uintptr(size), syscall.MADV_DONTNEED)
	if errno != 0 {
		return os.NewSyscallError("madvise", errno)
	}
	return nil
}

// statm is /proc/self/statm, opened once and read with pread.
var statm = sync.OnceValues(func() (*os.File, error) { return os.Open("/proc/self/statm") })

// residentFile returns the bytes of file-backed (and shared) memory the
// process has resident, or -1 if that cannot be read.
func residentFile() int64 {
	f, err := statm()
	if err != nil {
		return -1
	}
	var buf [128]byte
	n, _ := f.ReadAt(buf[:], 0) // io.EOF with the whole file
	// "size resident shared text lib data dt", in pages; shared counts
	// RssFile and RssShmem.
	field, pages, digits := 0, int64(0), 0
	for _, c := range buf[:n] {
		switch {
		case c == ' ':
			field++
		case field == 2 && c >= '0' && c <= '9':
			pages = pages*10 + int64(c-'0')
			digits++
		}
	}
	if digits == 0 {
		return -1
	}
	return pages * int64(os.Getpagesize())
}
