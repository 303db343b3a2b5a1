package offline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/boltmem"
	"mediaslot/internal/groupcommit"
)

// TestLargeQueueKeepsResidentMemoryFlat builds a queue of 120,000 stanzas
// for 400 recipients (a 290 MB file), closes it as mediaslot does, and
// checks that what the process keeps resident grows by little, whatever
// the size of the file: while it is opened again the way serve.go opens
// it; while five recipients drain their entries (scattered through the
// whole file, one stanza in 400) and new ones are queued and drained; and
// while the oldest 5,000 stanzas, for every recipient, are purged. Without
// boltmem.Close the open maps the whole file; without the budget of mapped
// pages the drains map 140 MB.
func TestLargeQueueKeepsResidentMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 290 MB file")
	}
	const (
		stanzas    = 120_000
		recipients = 400
		purged     = 5_000
		maxGrowth  = 3 * mappedBudget
	)
	peak := newPeakMeter(t)
	path := filepath.Join(t.TempDir(), "q.db")
	t0 := buildQueue(t, path, stanzas, recipients)

	peak.reset()
	db, err := bolt.Open(path, 0o600, serveOptions)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	q, err := Open(db, w, NoLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		w.Close()
		if err := boltmem.Close(db); err != nil {
			t.Error(err)
		}
	}()
	peak.check("opening the file", maxGrowth)

	peak.reset()
	stanza := make([]byte, 1024)
	drained := map[int]bool{}
	for r := 0; r < recipients; r += recipients / 5 { // not neighbours in the file
		drained[r] = true
		rcpt := fmt.Sprintf("user%d@example.org", r)
		for range 300 {
			if err := q.Enqueue(context.Background(), "s@example.org", []string{rcpt}, stanza); err != nil {
				t.Fatal(err)
			}
		}
		n, err := q.Drain(context.Background(), rcpt, func(Entry) error { return nil }, nil)
		if want := stanzas/recipients + 300; n != want || err != nil {
			t.Fatalf("Drain(%s) = %d, %v; want %d", rcpt, n, err, want)
		}
	}
	peak.check("draining and queueing", maxGrowth)

	peak.reset()
	want := 0
	for i := range purged {
		if !drained[i%recipients] {
			want++
		}
	}
	if n, err := q.Purge(context.Background(), t0.Add(purged*time.Millisecond+DefaultTTL)); n != want || err != nil {
		t.Fatalf("Purge = %d, %v; want %d", n, err, want)
	}
	peak.check("purging", maxGrowth)
}

// buildQueue writes a queue of n 1 KiB stanzas, round-robin to recipients
// user0@example.org and so on, accepted a millisecond apart from the time
// it returns. It is quick about it: large transactions without fsync. It
// closes the file with boltmem.Close, as mediaslot does.
func buildQueue(t *testing.T, path string, n, recipients int) (t0 time.Time) {
	t.Helper()
	opt := *serveOptions
	opt.NoSync = true
	db, err := bolt.Open(path, 0o600, &opt)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	_, err = Open(db, w, Limits{})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	value, err := encodeEntry(Entry{Sender: "s@example.org", Stanza: make([]byte, 1024)})
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	for i := 0; i < n; {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			tot := b.totals()
			for end := min(n, i+10_000); i < end; i++ {
				id, err := b.root.NextSequence()
				if err != nil {
					return err
				}
				at := t0.Add(time.Duration(i) * time.Millisecond)
				v := bytes.Clone(value) // bbolt keeps it until the commit
				stampAccepted(v, at)
				if err := b.addStanza(&tot, id, v, at, 1024, 1, "s@example.org"); err != nil {
					return err
				}
				r := fmt.Sprintf("user%d@example.org", i%recipients)
				prefix, err := recipientPrefix(r)
				if err != nil {
					return err
				}
				// Seen, so that their entries live for the full TTL.
				if err := b.markSeen(r, at); err != nil {
					return err
				}
				if err := b.addEntry(&tot, r, prefix, id, at, 1024, "s@example.org", true); err != nil {
					return err
				}
			}
			return b.setTotals(tot)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := boltmem.Close(db); err != nil {
		t.Fatal(err)
	}
	return t0
}

// peakMeter measures how far the process's resident memory rises above
// where it was at reset, from VmHWM, which Linux lets a process restart.
type peakMeter struct {
	t     *testing.T
	clear *os.File // /proc/self/clear_refs
	base  map[string]int64
}

func newPeakMeter(t *testing.T) *peakMeter {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot reset the peak of resident memory: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return &peakMeter{t: t, clear: f}
}

// reset restarts VmHWM from the current VmRSS.
func (m *peakMeter) reset() {
	// Heap the Go runtime hands back later would hide as much growth of
	// the file-backed part: hand it back now.
	debug.FreeOSMemory()
	if _, err := m.clear.WriteString("5"); err != nil {
		m.t.Fatalf("resetting VmHWM: %v", err)
	}
	m.base = procStatus(m.t)
}

// check fails the test if VmHWM rose more than limit bytes above VmRSS at
// the reset.
func (m *peakMeter) check(what string, limit int64) {
	m.t.Helper()
	now := procStatus(m.t)
	growth := now["VmHWM"] - m.base["VmRSS"]
	m.t.Logf("%s: resident memory rose by up to %.1f MB (now anonymous %+.1f MB, file-backed %+.1f MB)", what,
		mb(growth), mb(now["RssAnon"]-m.base["RssAnon"]), mb(now["RssFile"]-m.base["RssFile"]))
	if growth > limit {
		m.t.Errorf("%s: resident memory rose by %.1f MB, more than %.1f MB", what, mb(growth), mb(limit))
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// procStatus returns the memory fields of /proc/self/status, in bytes.
func procStatus(t *testing.T) map[string]int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fields := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		if kb, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB"); ok {
			if v, err := strconv.ParseInt(kb, 10, 64); err == nil {
				fields[name] = v << 10
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fields
}
