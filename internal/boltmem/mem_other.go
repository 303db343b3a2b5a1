//go:build !linux

package boltmem

import bolt "go.etcd.io/bbolt"

// unmap does nothing: fault-around, the reason for unmapping, was measured
// on Linux only.
func unmap(*bolt.Tx) error { return nil }

// residentFile reports that resident memory is unknown, so a Budget never
// runs out.
func residentFile() int64 { return -1 }
