// Package dbfile opens mediaslot's bbolt database so that a damaged file
// stops the start with an error that names the file and says what to do,
// instead of crashing the process later or being replaced by an empty
// database.
//
// bbolt trusts its file: it maps it into memory and follows page numbers
// without bounds checks, so a file cut short faults (SIGBUS) at the first read
// past its end, and scribbled pages fail bbolt's assertions with panics, some
// of them in goroutines of bbolt's own that no recover reaches (Tx.Check's
// walk, the free-list rebuild of Open). So the check runs in a child process,
// this same binary started again (see Init): whatever the file does to the
// child, the parent learns what it found, or how it died.
package dbfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// LockTimeout bounds the wait for the file's lock, which a running
// mediaslot holds for as long as it runs.
const LockTimeout = 2 * time.Second

// ErrLocked means another process (a running mediaslot) holds the file.
var ErrLocked = errors.New("locked by another process")

// Options are the bbolt options mediaslot serves with. The map freelist,
// not synced, keeps commits small while the relay queue deletes much:
// synced, every commit writes the whole list, and after a purge had freed
// 580,000 pages (a million stanzas) the queue took 130 enqueues/s instead of
// 2,700 (offline's BenchmarkEnqueueAfterPurge shows it at a smaller scale).
// Not synced, Open rebuilds it by reading, and mapping, every page of the
// file, unless boltmem.Close wrote it at the last shutdown.
func Options() bolt.Options {
	return bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: true}
}

// Open opens the database file at path for reading and writing, creating it
// only when it does not exist. An existing file is checked first (Check) and
// refused when it is empty or damaged: bbolt would start a new database in
// an empty file, losing every slot record and the relay queue without a
// word, and would crash on a damaged one. opts.Timeout is LockTimeout.
func Open(ctx context.Context, path string, opts bolt.Options) (*bolt.DB, error) {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		if _, err := Check(ctx, path); err != nil {
			return nil, err
		}
	} else if target, err := os.Readlink(path); err == nil {
		// bbolt would create the file at the link's target: a database
		// put on a volume that is not mounted would start empty.
		return nil, fmt.Errorf("%s is a symlink to %s, which does not exist: mediaslot creates a new database only where there is no file and no link; "+
			"mount or restore the target, or remove the link to start with an empty database", path, target)
	}
	opts.Timeout = LockTimeout
	db, err := bolt.Open(path, 0o600, &opts)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, lockedError(path)
	case err != nil:
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

func lockedError(path string) error {
	return fmt.Errorf("%s is %w: is another mediaslot using it? (one mediaslot per data.dir)", path, ErrLocked)
}

// Report is what Check learnt about a file.
type Report struct {
	Size     int64 `json:"size"`      // bytes in the file
	PageSize int   `json:"page_size"` // bytes per page
	Used     int64 `json:"used"`      // bytes up to the last committed transaction's high-water mark
	TxID     int   `json:"txid"`      // the last committed transaction
	Buckets  int   `json:"buckets"`   // read, nested ones too
	Keys     int   `json:"keys"`      // read, with their values
}

// String says what was checked, for a report line.
func (r Report) String() string {
	return fmt.Sprintf("%d pages of %d bytes in use (the file has %d bytes), transaction %d; %d buckets and %d keys read; bbolt's consistency check found nothing wrong",
		r.Used/int64(max(r.PageSize, 1)), r.PageSize, r.Size, r.TxID, r.Buckets, r.Keys)
}

// DamagedError is a file mediaslot must not use; Problems says why.
type DamagedError struct {
	Path     string
	Problems []string
}

// shownProblems is how many problems an error message quotes; `mediaslot
// db check` lists them all (up to maxProblems).
const shownProblems = 3

func (e *DamagedError) Error() string {
	p := e.Problems
	more := ""
	if len(p) > shownProblems {
		more = fmt.Sprintf(" (and %d more)", len(p)-shownProblems)
		p = p[:shownProblems]
	}
	return fmt.Sprintf("%s is damaged: %s%s. mediaslot does not use a damaged database: restore the file from a backup, "+
		"or move it aside to start with an empty database (the slot records and the relay queue in it are then lost); "+
		"`mediaslot db check --db %s` lists what is wrong (docs/OPERATIONS.md, \"A damaged database\")",
		e.Path, strings.Join(p, "; "), more, e.Path)
}

// Check reads the whole database file at path without changing it and
// returns what it learnt. The error is a *DamagedError when the file is
// empty or damaged, wraps ErrLocked when a running mediaslot holds it, and
// fs.ErrNotExist when there is no file. It reads every page in use: it takes
// about as long as reading the file.
func Check(ctx context.Context, path string) (Report, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Report{}, err
	}
	if st.IsDir() {
		return Report{}, fmt.Errorf("%s is a directory, not a database file", path)
	}
	if !st.Mode().IsRegular() {
		// A FIFO or a device would block the check or pass as an empty
		// file (their size is 0); bbolt needs a file it can map.
		return Report{}, fmt.Errorf("%s is not a regular file (mode %s), not a database file", path, st.Mode())
	}
	if st.Size() == 0 {
		return Report{}, &DamagedError{Path: path, Problems: []string{
			"it is empty (0 bytes), and even a new database has 4 pages: it was cut short, or created and never written; " +
				"mediaslot does not start a new database in its place"}}
	}
	if !initialised {
		return Report{}, errors.New("dbfile.Init was not called first in main (or TestMain): the checker cannot run")
	}
	exe, err := os.Executable()
	if err != nil {
		return Report{}, fmt.Errorf("checking %s: %w", path, err)
	}
	cmd := exec.CommandContext(ctx, exe)
	// GOTRACEBACK=none keeps a crash's report to its cause, without stacks.
	cmd.Env = append(os.Environ(), envChild+"="+path, "GOTRACEBACK=none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return Report{}, ctx.Err()
	}
	var (
		problems []string
		report   *Report
		locked   bool
		failed   string
	)
	dec := json.NewDecoder(&stdout)
	for {
		var l line
		if dec.Decode(&l) != nil {
			break
		}
		switch {
		case l.Problem != "":
			problems = append(problems, l.Problem)
		case l.Locked:
			locked = true
		case l.Error != "":
			failed = l.Error
		case l.Report != nil:
			report = l.Report
		}
	}
	switch {
	case locked:
		return Report{}, lockedError(path)
	case failed != "":
		return Report{}, fmt.Errorf("checking %s: %s", path, failed)
	case report == nil:
		// A Go crash (exit status 2) is the file's doing; anything else,
		// such as the kernel killing the child for memory, is not damage.
		cause := crashCause(stderr.String())
		if cause == "" {
			return Report{}, fmt.Errorf("checking %s: the checker (%s) ended without a report: %v %s", path, exe, runErr, bytes.TrimSpace(stderr.Bytes()))
		}
		problems = append(problems, "reading it crashed bbolt: "+cause)
	}
	if len(problems) > 0 {
		return Report{}, &DamagedError{Path: path, Problems: problems}
	}
	return *report, nil
}

// crashCause picks the lines of a Go crash report that say what happened:
// the panic or fatal error and the signal; "" when s is no crash report.
func crashCause(s string) string {
	var cause []string
	for l := range strings.Lines(s) {
		l = strings.TrimSpace(l)
		for _, p := range []string{"panic: ", "fatal error: ", "unexpected fault address", "[signal "} {
			if strings.HasPrefix(l, p) {
				cause = append(cause, l)
				break
			}
		}
	}
	return strings.Join(cause, " ")
}
