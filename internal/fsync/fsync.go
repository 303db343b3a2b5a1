// Package fsync makes directory entries durable: after a file is created,
// linked or renamed into a directory, the name survives a crash only once
// the directory itself is synced. File contents need (*os.File).Sync.
package fsync

import "os"

// Dir syncs the directory dir, making the names in it durable.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
