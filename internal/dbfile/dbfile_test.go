package dbfile_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
	"mediaslot/internal/dbfile/dbfiletest"
)

// TestMain lets the test binary be the checker child that Check starts.
// Under -race, each child would wait a second at its exit for reports from
// other goroutines (GORACE atexit_sleep_ms): it has none.
func TestMain(m *testing.M) {
	dbfile.Init()
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

const keys = 500

func soundFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "mediaslot.db")
	dbfiletest.Sound(t, path, keys)
	return path
}

// A sound file passes, every key read, and opens.
func TestSound(t *testing.T) {
	path := soundFile(t)
	r, err := dbfile.Check(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Keys != 2*keys || r.Buckets != 2 || r.PageSize == 0 || r.Used == 0 || r.Used > r.Size || r.TxID == 0 {
		t.Errorf("report %+v", r)
	}
	if !strings.Contains(r.String(), "found nothing wrong") {
		t.Errorf("summary %q", r)
	}
	db, err := dbfile.Open(context.Background(), path, dbfile.Options())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// Only a missing file is created.
func TestOpenCreatesMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mediaslot.db")
	db, err := dbfile.Open(context.Background(), path, dbfile.Options())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := dbfile.Check(context.Background(), path); err != nil {
		t.Fatalf("a new database: %v", err)
	}
	if _, err := dbfile.Check(context.Background(), path+".none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Check of a missing file: %v", err)
	}
}

// Each damaged file is refused, by Check and by Open, with an error that
// names the file, says what is wrong and what to do, and without the hint
// of a lock; the process survives (bbolt alone faults or panics on all but
// the empty file, which it silently makes a new database of).
func TestDamagedRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(testing.TB, string)
		want   string
	}{
		{"truncated", dbfiletest.Truncate, "it was cut short"},
		{"scribbled", dbfiletest.Scribble, ""},
		// the read faults: SetPanicOnFault makes it a panic walk recovers
		{"page number outside the file", dbfiletest.PointOutside, "a read faulted: a page number points outside the file"},
		{"shorter than its two meta pages", func(t testing.TB, path string) { _ = os.Truncate(path, 5000) }, "file size too small"},
		{"empty", func(t testing.TB, path string) { _ = os.Truncate(path, 0) }, "it is empty (0 bytes)"},
		{"not whole pages", func(t testing.TB, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			_, _ = f.WriteString("tail")
			f.Close()
		}, "not a whole number of 4096-byte pages"},
		// bbolt's own check finds this, in a goroutine of its own whose
		// panic ends the process: the checker's
		{"keys out of order", func(t testing.TB, path string) {
			b, _ := os.ReadFile(path)
			i := bytes.Index(b, []byte("key-00000250"))
			copy(b[i:], "key-zzzzzzzz")
			_ = os.WriteFile(path, b, 0o600)
		}, "reading it crashed bbolt: panic: freepages: failed to get all reachable pages"},
		{"meta pages overwritten", func(t testing.TB, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			_, _ = f.WriteAt(make([]byte, 2*4096), 0)
			f.Close()
		}, "neither of its two meta pages"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := soundFile(t)
			c.damage(t, path)
			before, _ := os.ReadFile(path)
			_, checkErr := dbfile.Check(context.Background(), path)
			db, openErr := dbfile.Open(context.Background(), path, dbfile.Options())
			if db != nil {
				db.Close()
			}
			for _, err := range []error{checkErr, openErr} {
				var de *dbfile.DamagedError
				if !errors.As(err, &de) {
					t.Fatalf("want a DamagedError, got %v", err)
				}
				msg := err.Error()
				for _, w := range []string{path + " is damaged: ", c.want, "restore the file from a backup", "mediaslot db check --db " + path} {
					if !strings.Contains(msg, w) {
						t.Errorf("%q lacks %q", msg, w)
					}
				}
				if strings.Contains(msg, "another mediaslot") {
					t.Errorf("the lock hint for a damaged file: %q", msg)
				}
			}
			t.Log(checkErr)
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("the file changed: %d bytes before, %d after", len(before), len(after))
			}
		})
	}
}

// A file that cannot be read, or is no file, is an error, and no damage:
// restoring a backup would not help.
func TestUnreadableIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	_, err := dbfile.Check(context.Background(), dir)
	var de *dbfile.DamagedError
	if err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), dir+" is a directory") {
		t.Errorf("a directory: %v", err)
	}
	if os.Geteuid() == 0 {
		return // root reads any file
	}
	path := soundFile(t)
	_ = os.Chmod(path, 0)
	if _, err := dbfile.Check(context.Background(), path); err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("an unreadable file: %v", err)
	}
}

// A file another process holds is refused with the hint of a running
// mediaslot, by Check (a shared lock) and by Open.
func TestLocked(t *testing.T) {
	path := soundFile(t)
	holder, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	_, checkErr := dbfile.Check(context.Background(), path)
	_, openErr := dbfile.Open(context.Background(), path, dbfile.Options())
	for _, err := range []error{checkErr, openErr} {
		if !errors.Is(err, dbfile.ErrLocked) || !strings.Contains(err.Error(), path+" is locked by another process: is another mediaslot using it?") {
			t.Errorf("got %v", err)
		}
	}
}
