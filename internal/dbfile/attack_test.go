package dbfile_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
