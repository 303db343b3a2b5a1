package dbfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// envChild names the file a checker child checks; Check sets it.
const envChild = "MEDIASLOT_DBFILE_CHECK"

// initialised says Init ran in this process, so that a child started again
// from it checks the file instead of running the program (or, in a test
// binary without Init in TestMain, every test again).
var initialised bool

// maxProblems bounds what a check reports of a badly damaged file.
const maxProblems = 100

// line is one JSON line from the checker child to Check: a problem as soon
// as it is found (so that a later crash loses none), then the report.
type line struct {
	Problem string  `json:"problem,omitempty"`
	Locked  bool    `json:"locked,omitempty"`
	Error   string  `json:"error,omitempty"` // the file cannot be read (permissions): not damage
	Report  *Report `json:"report,omitempty"`
}

// Init makes the process the checker child when Check started it, and
// returns at once otherwise. Every program that calls Open or Check calls
// Init first thing in main (and test binaries in TestMain), before it does
// anything else: the checker is the program itself, started again.
func Init() {
	path, ok := os.LookupEnv(envChild)
	if !ok {
		initialised = true
		return
	}
	enc := json.NewEncoder(os.Stdout)
	var mu sync.Mutex // one line at a time, from the check and the watch
	c := checker{problem: func(p string) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(line{Problem: p})
	}}
	if st, err := os.Stat(path); err == nil {
		// A tree that loops makes bbolt's cursors and its check descend
		// for ever, without a fault or a panic: their stacks grow by
		// gigabytes a second.
		debug.SetMaxStack(maxStack)
		bound := memoryBound(st.Size())
		go watchMemory(bound, func(used uint64) {
			mu.Lock() // kept until the exit: the check writes nothing more
			_ = enc.Encode(line{Problem: fmt.Sprintf("reading it took over %d MiB of memory (%d MiB), which a sound file of %d bytes never needs: its tree loops (a page points back up the tree)",
				bound>>20, used>>20, st.Size())})
			_ = enc.Encode(line{Report: &Report{}})
			os.Exit(0)
		})
	}
	r, err := c.check(path)
	var pe *fs.PathError
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		_ = enc.Encode(line{Locked: true})
	case errors.As(err, &pe):
		_ = enc.Encode(line{Error: err.Error()})
	case err != nil:
		c.report(err.Error())
		fallthrough
	default:
		_ = enc.Encode(line{Report: &r})
	}
	os.Exit(0)
}

// maxStack bounds the checker's goroutine stacks: bbolt's recursion is as
// deep as a tree, a few pages.
const maxStack = 64 << 20

// memoryBound is the memory a check of a file of size bytes may take: its
// maps of the pages it has seen take about 50 bytes a page (4 KiB).
func memoryBound(size int64) uint64 { return 256<<20 + uint64(size)/16 }

// watchMemory calls over when the process holds more than bound bytes,
// watching its memory every 10 ms (it grows by 40 MB at most meanwhile).
func watchMemory(bound uint64, over func(used uint64)) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		metrics.Read(s)
		if used := s[0].Value.Uint64() - s[1].Value.Uint64(); used > bound {
			over(used)
			return
		}
	}
}

// checker runs in the child: each problem goes out when found.
type checker struct {
	problem func(string)
	n       int
}

func (c *checker) report(p string) {
	if c.n++; c.n <= maxProblems {
		c.problem(p)
	}
}

// check opens path read-only (a shared lock: not while mediaslot runs) and
// reads it: the sizes, then every bucket, key and value, then bbolt's own
// consistency check (Tx.Check). Only the error of opening it is returned: an
// *fs.PathError when the file cannot be opened at all, which is no damage.
func (c *checker) check(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, err
	}
	f.Close()
	// Read-only, bbolt reads only the two meta pages when it opens the file.
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: LockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return Report{}, err
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return Report{}, fmt.Errorf("neither of its two meta pages (at its start) is valid (%v): it is not a bbolt database, or its start was overwritten", err)
	case err != nil:
		return Report{}, fmt.Errorf("bbolt cannot open it: %v", err)
	}
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return Report{}, err
	}
	r := Report{Size: fi.Size(), PageSize: db.Info().PageSize}
	err = db.View(func(tx *bolt.Tx) error {
		r.Used, r.TxID = tx.Size(), tx.ID()
		if r.Size%int64(r.PageSize) != 0 {
			c.report(fmt.Sprintf("it has %d bytes, not a whole number of %d-byte pages, which bbolt never writes: it was cut (an interrupted copy?)", r.Size, r.PageSize))
		}
		if r.Size < r.Used {
			// Every read past the end would fault: stop here.
			c.report(fmt.Sprintf("it has %d bytes but its last transaction (%d) uses %d: it was cut short, and the pages past its end are lost", r.Size, r.TxID, r.Used))
			return nil
		}
		if !c.walk(tx, &r) {
			return nil // Tx.Check would only fail on the same page, in a panic
		}
		for err := range tx.Check() {
			c.report("bbolt's consistency check: " + err.Error())
		}
		return nil
	})
	return r, err
}

// walk reads every bucket, key and value, first and last byte, so that a
// page number pointing outside the file is found here: with SetPanicOnFault
// the fault of such a read, like the panic of a failed bbolt assertion in
// this goroutine, comes back as a panic that walk recovers and reports.
// It reports whether all went well.
func (c *checker) walk(tx *bolt.Tx, r *Report) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var where []byte
	defer func() {
		if v := recover(); v != nil {
			what := fmt.Sprint(v)
			if _, ok := v.(interface{ Addr() uintptr }); ok { // a fault
				what = "a read faulted: a page number points outside the file"
			}
			c.report(fmt.Sprintf("reading bucket %q failed: %s (a damaged page)", where, what))
		}
	}()
	var bucket func(b *bolt.Bucket)
	bucket = func(b *bolt.Bucket) {
		r.Buckets++
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					outer := where
					where = append(append(where, '/'), k...)
					bucket(nb)
					where = outer
					continue
				}
			}
			r.Keys++
			touch(k)
			touch(v)
		}
	}
	_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		where = append(where[:0], name...)
		bucket(b)
		return nil
	})
	return true
}

// touch reads the first and last byte of b: if b runs past the mapped file,
// that read faults. KeepAlive keeps the compiler from dropping the reads.
func touch(b []byte) {
	if len(b) > 0 {
		runtime.KeepAlive(b[0])
		runtime.KeepAlive(b[len(b)-1])
	}
}
