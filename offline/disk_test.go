package offline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/boltmem"
	"mediaslot/internal/groupcommit"
)

// TestMeasureDiskAtCaps fills a queue with the default Limits to its
// whole-queue caps with the largest relayed messages (64 KiB, the default
// relay.max_stanza_size), then for each round drains half the recipients
// (a different half each time) and fills it up again, and reports the
// largest file size: the numbers docs/OPERATIONS.md gives. It does so with
// JIDs of ordinary length, and with the longest a local account can have
// (1023-byte localparts), whose keys are the queue's largest overhead.
// Each round writes about 0.5 GB, so it runs only when asked:
//
//	MEDIASLOT_MEASURE_DISK=3 go test ./offline -run TestMeasureDiskAtCaps -v -timeout 60m
//
// Commits are not synced: the file's size does not depend on it.
func TestMeasureDiskAtCaps(t *testing.T) {
	rounds, err := strconv.Atoi(os.Getenv("MEDIASLOT_MEASURE_DISK"))
	if err != nil || rounds < 0 {
		t.Skip("set MEDIASLOT_MEASURE_DISK to a number of rounds to fill a queue to its default caps and report its size")
	}
	for _, shape := range []struct {
		name      string
		localpart func(prefix string, i int) string
	}{
		{"short JIDs", func(p string, i int) string { return fmt.Sprintf("%s%d", p, i) }},
		{"1023-byte localparts", func(p string, i int) string {
			s := fmt.Sprintf("%s%d", p, i)
			return s + strings.Repeat("x", 1023-len(s))
		}},
	} {
		t.Run(shape.name, func(t *testing.T) {
			const (
				stanzaSize = 64 << 10
				perStanza  = 6 // recipients: 16,384 stanzas of 1 GiB hold 98,304 entries
				recipients = 1000
				senders    = 64
			)
			path := filepath.Join(t.TempDir(), "mediaslot.db")
			opt := *serveOptions
			opt.NoSync = true
			db, err := bolt.Open(path, 0o600, &opt)
			if err != nil {
				t.Fatal(err)
			}
			w := groupcommit.New(db)
			defer func() {
				w.Close()
				if err := boltmem.Close(db); err != nil {
					t.Error(err)
				}
			}()
			q, err := Open(db, w, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rcpt := make([]string, recipients)
			for i := range rcpt {
				rcpt[i] = shape.localpart("r", i) + "@example.net"
				if err := q.MarkSeen(ctx, rcpt[i]); err != nil {
					t.Fatal(err)
				}
			}
			stanza := make([]byte, stanzaSize)
			// fill enqueues from every sender until the whole queue
			// refuses, and returns how many stanzas it stored.
			next := 0
			var nextMu sync.Mutex
			fill := func() int {
				var stored int
				var wg sync.WaitGroup
				var mu sync.Mutex
				for s := range senders {
					sender := shape.localpart("s", s) + "@example.net/phone"
					wg.Go(func() {
						for {
							nextMu.Lock()
							i := next
							next++
							nextMu.Unlock()
							to := make([]string, perStanza)
							for k := range to {
								to[k] = rcpt[(i*perStanza+k)%recipients]
							}
							err := q.Enqueue(ctx, sender, to, stanza)
							var le *LimitError
							if errors.As(err, &le) && le.Scope == QueueScope {
								return
							}
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							stored++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				return stored
			}
			largest := int64(0)
			report := func(what string, stored int) {
				t.Helper()
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				s, err := q.Stats()
				if err != nil {
					t.Fatal(err)
				}
				largest = max(largest, fi.Size())
				t.Logf("%s: %d stanzas stored; queue %d stanzas, %d entries, %d MiB of stanzas; file %d MiB (%.2f × the stanzas)",
					what, stored, s.Stanzas, s.Entries, s.Bytes>>20, fi.Size()>>20, float64(fi.Size())/float64(s.Bytes))
			}
			report("filled", fill())
			// Each round drains half the recipients, a different half each
			// time: about half the stanzas, scattered through the file,
			// leaving holes of every size for the refill.
			for round := range rounds {
				from := round * recipients / 4
				for i := from; i < from+recipients/2; i++ {
					if _, err := q.Drain(ctx, rcpt[i%recipients], func(Entry) error { return nil }, nil); err != nil {
						t.Fatal(err)
					}
				}
				report(fmt.Sprintf("round %d, refilled", round+1), fill())
			}
			t.Logf("largest file: %d MiB", largest>>20)
		})
	}
}
