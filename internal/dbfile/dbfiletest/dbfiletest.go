// Package dbfiletest opens database files as serve does for the tests and
// benchmarks of what stores in them, and makes sound and damaged ones for
// tests of what mediaslot does with them.
package dbfiletest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
)

// New opens a fresh mediaslot.db in the test's directory with the options
// `mediaslot serve` uses, and its group-commit Writer, as serve writes
// through one; both close when the test ends.
func New(tb testing.TB) (*bolt.DB, *groupcommit.Writer) {
	tb.Helper()
	opts := dbfile.Options()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "mediaslot.db"), 0o600, &opts)
	if err != nil {
		tb.Fatal(err)
	}
	w := groupcommit.New(db)
	tb.Cleanup(func() { w.Close(); db.Close() })
	return db, w
}

// Sound writes a database at path with n keys in a bucket and a nested
// bucket, opened and closed as mediaslot serve does after a kill -9: the
// free list is not in the file, so opening it walks every page.
func Sound(t testing.TB, path string, n int) {
	t.Helper()
	opts := dbfile.Options()
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("slots"))
		if err != nil {
			return err
		}
		nested, err := b.CreateBucket([]byte("nested"))
		if err != nil {
			return err
		}
		for i := range n {
			k := fmt.Appendf(nil, "key-%08d", i)
			v := fmt.Appendf(nil, "value %d %0200d", i, i)
			if err := b.Put(k, v); err != nil {
				return err
			}
			if err := nested.Put(k, v[:20]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Truncate cuts the file to half the pages its last transaction uses.
func Truncate(t testing.TB, path string) {
	t.Helper()
	var used, pageSize int64
	view(t, path, func(tx *bolt.Tx) { used, pageSize = tx.Size(), int64(tx.DB().Info().PageSize) })
	if err := os.Truncate(path, used/pageSize/2*pageSize); err != nil {
		t.Fatal(err)
	}
}

// Scribble overwrites the page in use in the middle of the file, a leaf or
// a branch of the tree, with random bytes.
func Scribble(t testing.TB, path string) {
	t.Helper()
	var pages []int
	var pageSize int
	view(t, path, func(tx *bolt.Tx) {
		pageSize = tx.DB().Info().PageSize
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				break
			}
			if p.Type == "leaf" || p.Type == "branch" {
				pages = append(pages, id)
			}
		}
	})
	if len(pages) == 0 {
		t.Fatalf("%s has no leaf or branch page", path)
	}
	junk := make([]byte, pageSize)
	r := rand.NewChaCha8([32]byte{12})
	_, _ = r.Read(junk)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(junk, int64(pages[len(pages)/2])*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// PointOutside makes the first child of a branch page a page number far
// past the end of the file (bbolt's page layout: a 16-byte header, then
// 16-byte elements whose last 8 bytes are the child's page number).
func PointOutside(t testing.TB, path string) {
	t.Helper()
	branch, pageSize := -1, 0
	view(t, path, func(tx *bolt.Tx) {
		pageSize = tx.DB().Info().PageSize
		for id := 2; branch < 0; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				t.Fatalf("%s has no branch page", path)
			}
			if p.Type == "branch" {
				branch = id
			}
		}
	})
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint64(nil, 1<<30), int64(branch*pageSize+16+8)); err != nil {
		t.Fatal(err)
	}
}

func view(t testing.TB, path string, fn func(*bolt.Tx)) {
	t.Helper()
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error { fn(tx); return nil })
}
