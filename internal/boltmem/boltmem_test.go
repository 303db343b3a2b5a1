package boltmem

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"runtime"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
)

const (
	values    = 10_000
	valueSize = 4000 // a page each: 40 MB of pages to map
	fileSize  = values * valueSize
)

var bucket = []byte("b")

func key(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

func value(i int) []byte { return bytes.Repeat([]byte{byte(i)}, valueSize) }

// build writes a file of values pages, frees a tenth of them, and closes
// it with closeDB. It opens the file as cmd/mediaslot does.
func build(t *testing.T, closeDB func(*bolt.DB) error) string {
	t.Helper()
	if residentFile() < 0 {
		t.Skip("resident memory is unknown here")
	}
	path := filepath.Join(t.TempDir(), "b.db")
	opts := dbfile.Options()
	opts.NoSync = true // quick to build
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucket)
		if err != nil {
			return err
		}
		for i := range values {
			if err := b.Put(key(i), value(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < values; i += 10 {
				if err := tx.Bucket(bucket).Delete(key(i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := closeDB(db); err != nil {
		t.Fatal(err)
	}
	return path
}

// open opens path the way cmd/mediaslot does and returns how much more
// file-backed memory is resident once it is open.
func open(t *testing.T, path string) (*bolt.DB, int64) {
	t.Helper()
	before := residentFile()
	opts := dbfile.Options()
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, residentFile() - before
}

func TestCloseSparesTheNextOpenAScan(t *testing.T) {
	path := build(t, (*bolt.DB).Close)
	db, scanned := open(t, path)
	if scanned < fileSize/2 {
		t.Fatalf("opening a file closed without its free list mapped %d bytes; want most of %d: the measure is broken", scanned, fileSize)
	}
	free := db.Stats().FreePageN
	if err := Close(db); err != nil {
		t.Fatal(err)
	}

	db, mapped := open(t, path)
	t.Logf("open mapped %d KB after db.Close, %d KB after Close", scanned>>10, mapped>>10)
	if mapped > fileSize/10 {
		t.Errorf("opening a file closed by Close mapped %d bytes of %d", mapped, fileSize)
	}
	// The list read back is the one rebuilt, but for the pages the list
	// itself took, and it agrees with the file.
	if got := db.Stats().FreePageN; got > free || free-got > free*8/db.Info().PageSize+2 {
		t.Errorf("%d free pages after Close; %d before", got, free)
	}
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Error(err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReleaseUnmapsAndTheDataStays(t *testing.T) {
	db, _ := open(t, build(t, Close))
	b := NewBudget(8 << 20)
	if b.Over() {
		t.Fatal("Over before anything was read")
	}
	err := db.View(func(tx *bolt.Tx) error {
		before := residentFile()
		c := tx.Bucket(bucket).Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			n += len(v)
		}
		read := residentFile() - before
		if read < int64(n)/2 || !b.Over() {
			t.Fatalf("reading %d bytes mapped %d, Over = %t; want most of them, true", n, read, b.Over())
		}
		if err := b.Release(tx); err != nil {
			return err
		}
		if left := residentFile() - before; left > read/10 || b.Over() {
			t.Errorf("Release left %d of %d bytes mapped, Over = %t", left, read, b.Over())
		}
		// Unmapped is not gone: pages fault back in, unchanged. (build
		// deleted the multiples of 10.)
		for _, i := range []int{1, values/2 + 1, values - 1} {
			if v := tx.Bucket(bucket).Get(key(i)); !bytes.Equal(v, value(i)) {
				t.Errorf("value %d changed after Release", i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrimReleasesOnlyOverBudget(t *testing.T) {
	db, _ := open(t, build(t, Close))
	b := NewBudget(fileSize / 2)
	err := db.View(func(tx *bolt.Tx) error {
		readValues := func(from, to int) {
			for i := from; i < to; i++ {
				runtime.KeepAlive(tx.Bucket(bucket).Get(key(i)))
			}
		}
		readValues(1, values/4)
		before := residentFile()
		b.Trim(tx)
		if residentFile() < before-fileSize/10 {
			t.Error("Trim released within the budget")
		}
		readValues(values/4, values)
		b.Trim(tx)
		if b.Over() || residentFile() > before {
			t.Errorf("Trim over budget left %d bytes mapped, %d before; Over = %t", residentFile(), before, b.Over())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
