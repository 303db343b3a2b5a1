package dbfile_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
)

// A database path that is a symlink whose target is missing (the data
// volume it points to not mounted, say) is refused: creating a new, empty
// database at the link's target would start without the slot records and
// the relay queue, silently.
func TestDanglingSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "volume", "mediaslot.db") // the volume's directory exists, the file not
	if err := os.Mkdir(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mediaslot.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	db, err := dbfile.Open(context.Background(), link, dbfile.Options())
	if err == nil {
		db.Close()
		t.Fatal("a dangling symlink was opened")
	}
	if !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), target) {
		t.Errorf("error does not name the link and its target: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the target was created: %v", err)
	}
}

// A symlink to a sound file is followed: it is an ordinary way to put the
// database elsewhere.
func TestSymlinkToSoundFile(t *testing.T) {
	path := soundFile(t)
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	db, err := dbfile.Open(context.Background(), link, dbfile.Options())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// A FIFO (or any file that is not a regular file) in the database's place
// is refused at once as what it is, without the check or bbolt blocking on
// it, and is left as it was.
func TestFIFORefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mediaslot.db")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("no FIFO here:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range []func() error{
		func() error { _, err := dbfile.Check(ctx, path); return err },
		func() error {
			db, err := dbfile.Open(ctx, path, dbfile.Options())
			if err == nil {
				db.Close()
			}
			return err
		},
	} {
		err := f()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("a FIFO: %v (%v)", err, ctx.Err())
		}
		if !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), path) {
			t.Errorf("the error does not say what is wrong: %v", err)
		}
	}
	if st, err := os.Lstat(path); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", st.Mode(), err)
	}
}

// selfBranch makes the root of the bucket "slots", a branch page, point to
// itself: a cursor going down the tree never reaches a leaf.
func selfBranch(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	var pageSize int
	_ = db.View(func(tx *bolt.Tx) error {
		pageSize = db.Info().PageSize
		root = uint64(tx.Bucket([]byte("slots")).Root())
		return nil
	})
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flags [2]byte // after the page id
	if _, err := f.ReadAt(flags[:], int64(root)*int64(pageSize)+8); err != nil || flags[0] != 0x01 {
		t.Fatalf("the bucket's root is no branch page: flags %x %v", flags, err)
	}
	// page header (16 bytes), then branch elements: pos, ksize, pgid
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint64(nil, root), int64(root)*int64(pageSize)+16+8); err != nil {
		t.Fatal(err)
	}
}

// A tree that loops (a branch page pointing to itself, or to a page above
// it) made the checker descend for ever, its stack of pages growing by
// gigabytes a second until the kernel killed it, or the machine ran out
// of memory; then it was not even reported as damage. The checker's
// memory is bounded, and the file reported damaged.
func TestPageCycleBounded(t *testing.T) {
	path := soundFile(t)
	selfBranch(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := dbfile.Check(ctx, path)
	var de *dbfile.DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "its tree loops") {
		t.Fatalf("want a DamagedError naming the loop, got %v", err)
	}
	// the largest child this process waited for: the checker
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	if ru.Maxrss > 1<<20 { // KiB
		t.Errorf("the checker grew to %d MiB", ru.Maxrss>>10)
	}
	t.Log(err, ru.Maxrss>>10, "MiB")
}

// nestedLoop makes the bucket "slots/nested" have the root of "slots":
// each bucket holds itself again.
func nestedLoop(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	_ = db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket([]byte("slots")).Root())
		return nil
	})
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// a leaf keeps a key and its value together: the value of a bucket
	// is its root page and sequence
	i := bytes.LastIndex(b, []byte("nested"))
	if i < 0 {
		t.Fatal("no nested bucket")
	}
	binary.LittleEndian.PutUint64(b[i+len("nested"):], root)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A bucket that contains itself made the walk recurse until the stack
// reached its gigabyte; it is reported as damage within the checker's
// bounds.
func TestNestedBucketLoopBounded(t *testing.T) {
	path := soundFile(t)
	nestedLoop(t, path)
	_, err := dbfile.Check(context.Background(), path)
	var de *dbfile.DamagedError
	if !errors.As(err, &de) {
		t.Fatalf("want a DamagedError, got %v", err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	if ru.Maxrss > 1<<20 { // KiB
		t.Errorf("the checker grew to %d MiB", ru.Maxrss>>10)
	}
	t.Log(err, ru.Maxrss>>10, "MiB")
}

// A new database, 4 pages and no bucket, is sound and opens; cut to its
// two meta pages, whose root and free list lie past the end, it is
// damaged, not an empty database.
func TestSmallestFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if r, err := dbfile.Check(context.Background(), path); err != nil || r.Keys != 0 || r.Buckets != 0 {
		t.Fatalf("a new database: %+v %v", r, err)
	}
	db, err = dbfile.Open(context.Background(), path, dbfile.Options())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, _ := os.Stat(path)
	if err := os.Truncate(path, 2*st.Size()/4); err != nil {
		t.Fatal(err)
	}
	_, err = dbfile.Check(context.Background(), path)
	var de *dbfile.DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("the two meta pages alone: %v", err)
	}
}
