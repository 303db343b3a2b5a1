// Package boltmem keeps a large bbolt file from swelling the resident
// memory of the process that has it open.
//
// bbolt reads its file through a shared, read-only memory map, so every
// page a transaction reads stays mapped, and counts in the process's
// resident set (RssFile, VmHWM), until the process unmaps it. Each page
// fault maps the cached pages around the one asked for too (fault-around:
// 64 KiB, or a whole large folio), and the MADV_RANDOM bbolt sets does not
// stop that (Linux 6.18, measured). Draining a relay queue whose entries
// are scattered through a 2.4 GB file thus kept about 350 KB resident per
// entry. Those pages are page cache, shared and reclaimable, but memory
// limits and RSS alarms count them, and without a Budget they only grow.
//
// Opening a file whose free list was not written at its last commit
// (bbolt's NoFreelistSync) reads every page of it to rebuild the list;
// Close writes the list once, so that the next Open reads only that.
package boltmem

import (
	"errors"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Close closes db after one last commit that writes its free list.
//
// A file opened with NoFreelistSync does not record its free list, since
// writing the whole list at every commit gets expensive once the file
// holds many free pages (enqueues of the relay queue dropped from 2,700/s
// to 130/s after a purge had freed 580,000 pages). The next Open must then
// rebuild the list by reading every page of the file, which maps all of
// it: 2.3 GB resident for a queue of a million stanzas. Written at Close,
// the list is read back instead, and the commits that follow stop writing
// it again. Only a process that did not get to Close pays for the rebuild.
//
// Close returns the error of that commit, if any, joined to db.Close's.
func Close(db *bolt.DB) error {
	err := db.Update(func(*bolt.Tx) error {
		// Commit reads the field; this function holds the writer lock
		// that every commit takes, so no other commit sees it change.
		db.NoFreelistSync = false
		return nil
	})
	return errors.Join(err, db.Close())
}

// A Budget bounds how much more file-backed memory the process keeps
// resident than it had after its last Release: the pages of a bbolt map
// that transactions have read, and any other files the process maps. Its
// methods are safe for concurrent use. Where the process's resident memory
// cannot be read (outside Linux, or without /proc), Over is always false
// and Trim does nothing.
type Budget struct {
	limit int64        // bytes
	base  atomic.Int64 // file-backed resident bytes after the last Release
}

// NewBudget returns a Budget of limit bytes, counted from now.
func NewBudget(limit int64) *Budget {
	b := &Budget{limit: limit}
	b.base.Store(residentFile())
	return b
}

// Over reports whether the process's file-backed resident memory grew by
// more than the budget since the last Release. It costs a read of
// /proc/self/statm, about 1.5 µs.
func (b *Budget) Over() bool {
	r := residentFile()
	return r >= 0 && r-b.base.Load() > b.limit
}

// Trim calls Release if the budget is spent. A failed release is not
// reported: it only leaves pages mapped, and the budget starts again from
// the current resident memory, so a failing madvise is not retried at
// every call.
func (b *Budget) Trim(tx *bolt.Tx) {
	if b.Over() {
		_ = b.Release(tx)
	}
}

// Release unmaps from the process the pages of tx's database file, with
// madvise(MADV_DONTNEED), and starts the budget again from what stays
// resident. The pages stay in the page cache: the map is shared and
// read-only, so the next read of one faults it back in, unchanged, without
// I/O.
//
// tx must be open, and Release must be called from the goroutine using it:
// from a read-only transaction's function, or from a read-write
// transaction's function before it returns. bbolt replaces the map (munmap
// and mmap, perhaps at another address) only while it holds every reader
// out, or while committing, so the map is the one tx sees for as long as
// tx is open, and no memory the process may have reused is ever touched.
func (b *Budget) Release(tx *bolt.Tx) error {
	err := unmap(tx)
	b.base.Store(residentFile())
	return err
}
