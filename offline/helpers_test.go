package offline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
)

// testQueue is a Queue on a fresh bbolt file, closed when the test ends.
type testQueue struct {
	*BoltQueue
	db *bolt.DB
	w  *groupcommit.Writer
}

// dbOptions are the ways worth testing the shared file opened with:
// bbolt's defaults, and serveOptions.
var dbOptions = []dbOption{
	{"default", nil},
	{"mapfreelist", serveOptions},
}

type dbOption struct {
	Name string
	Opt  *bolt.Options
}

// serveOptions are those cmd/mediaslot/serve.go opens the file with
// (dbfile.Options): a hash-map freelist that is not written at every commit
// but rebuilt when the file is opened (unless boltmem.Close wrote it),
// which suits the queue's many deletions.
var serveOptions = func() *bolt.Options { o := dbfile.Options(); return &o }()

func newQueue(tb testing.TB, l Limits) testQueue {
	tb.Helper()
	return openQueue(tb, filepath.Join(tb.TempDir(), "q.db"), nil, l)
}

// openQueue opens the queue in the bbolt file at path, as the server does.
func openQueue(tb testing.TB, path string, opt *bolt.Options, l Limits) testQueue {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	w := newWriter(tb, db)
	q, err := Open(db, w, l)
	if err != nil {
		tb.Fatal(err)
	}
	return testQueue{BoltQueue: q, db: db, w: w}
}

// newWriter returns a Writer on db, closed before db when the test ends.
func newWriter(tb testing.TB, db *bolt.DB) *groupcommit.Writer {
	w := groupcommit.New(db)
	tb.Cleanup(w.Close)
	return w
}

func enqueue(tb testing.TB, q testQueue, sender string, stanza string, recipients ...string) {
	tb.Helper()
	if err := q.Enqueue(context.Background(), sender, recipients, []byte(stanza)); err != nil {
		tb.Fatalf("Enqueue(%s -> %v): %v", sender, recipients, err)
	}
}

// drainAll drains recipient and returns what was delivered.
func drainAll(tb testing.TB, q testQueue, recipient string) []Entry {
	tb.Helper()
	var got []Entry
	n, err := q.Drain(context.Background(), recipient, func(e Entry) error {
		got = append(got, e)
		return nil
	}, nil)
	if err != nil || n != len(got) {
		tb.Fatalf("Drain(%s) = %d, %v; delivered %d", recipient, n, err, len(got))
	}
	return got
}

func stanzas(entries []Entry) []string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = string(e.Stanza)
	}
	return s
}

// checkConsistent recounts the queue from its entries and stanzas and
// fails if the holder index, the time index, the unseen index, the
// counters or the totals disagree: the state a crash or a refused or
// purged write must never leave behind.
func checkConsistent(tb testing.TB, db *bolt.DB) {
	tb.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		holders := map[uint64]int{}
		records := map[uint64]Entry{}
		var tot totals
		err = b.stanzas.ForEach(func(k, v []byte) error {
			id := binary.BigEndian.Uint64(k)
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			holders[id] = 0
			records[id] = e
			tot.stanzas++
			tot.bytes += uint64(len(e.Stanza))
			return nil
		})
		if err != nil {
			return err
		}
		want := map[string]counter{}
		senders := map[string]counter{}
		shares := map[string]counter{}
		unseenBy := map[string]counter{}
		err = b.queue.ForEach(func(k, _ []byte) error {
			n := int(binary.BigEndian.Uint16(k))
			r, id := string(k[2:2+n]), binary.BigEndian.Uint64(k[2+n:])
			e, ok := records[id]
			if !ok {
				return fmt.Errorf("entry %d of %s: no stanza", id, r)
			}
			if !has(b.holders, holderKey(id, r)) {
				tb.Errorf("entry %d of %s: no holder key", id, r)
			}
			if !b.isSeen(r) && !has(b.unseen, unseenKey(e.Accepted, id, r)) {
				tb.Errorf("entry %d of unseen %s: no unseen key", id, r)
			}
			size := uint64(len(e.Stanza))
			holders[id]++
			c := want[r]
			want[r] = counter{c.entries + 1, c.bytes + size}
			account, _, _ := strings.Cut(e.Sender, "/")
			c = senders[account]
			senders[account] = counter{c.entries + 1, c.bytes}
			sk := string(shareKey(k[:2+n], account))
			c = shares[sk]
			shares[sk] = counter{c.entries + 1, c.bytes + size}
			if !b.isSeen(r) {
				c = unseenBy[account]
				unseenBy[account] = counter{c.entries + 1, c.bytes + size}
			}
			tot.entries++
			return nil
		})
		if err != nil {
			return err
		}
		for id, n := range holders {
			e := records[id]
			account, _, _ := strings.Cut(e.Sender, "/")
			c := senders[account]
			senders[account] = counter{c.entries, c.bytes + uint64(len(e.Stanza))}
			tv := b.byTime.Get(timeKey(e.Accepted, id))
			if n == 0 || !bytes.Equal(tv, append(uint64s(uint64(n), uint64(len(e.Stanza))), account...)) {
				tb.Errorf("stanza %d: %d holders, time index has %x", id, n, tv)
			}
		}
		if n := b.byTime.Stats().KeyN; n != len(holders) {
			tb.Errorf("time index has %d keys for %d stanzas", n, len(holders))
		}
		if n := b.holders.Stats().KeyN; n != int(tot.entries) {
			tb.Errorf("holder index has %d keys for %d entries", n, tot.entries)
		}
		if n := b.counts.Stats().KeyN; n != len(want) {
			tb.Errorf("counters for %d recipients, entries for %d", n, len(want))
		}
		for r, c := range want {
			if got := b.count(r); got != c {
				tb.Errorf("counter of %s is %+v, entries say %+v", r, got, c)
			}
			if !b.isSeen(r) {
				tot.unseenEntries += c.entries
				tot.unseenBytes += c.bytes
			}
		}
		for _, x := range []struct {
			name   string
			bucket *bolt.Bucket
			want   map[string]counter
		}{{"sender", b.senders, senders}, {"share", b.shares, shares}, {"unseen by sender", b.unseenBy, unseenBy}} {
			if n := x.bucket.Stats().KeyN; n != len(x.want) {
				tb.Errorf("%s counters: %d, entries say %d", x.name, n, len(x.want))
			}
			for k, c := range x.want {
				if got := b.counter(x.bucket, []byte(k)); got != c {
					tb.Errorf("%s counter %q is %+v, entries say %+v", x.name, k, got, c)
				}
			}
		}
		err = b.unseen.ForEach(func(k, _ []byte) error {
			r, id := string(k[16:]), binary.BigEndian.Uint64(k[8:16])
			if !b.isSeen(r) && !has(b.holders, holderKey(id, r)) {
				tb.Errorf("unseen key of %s, stanza %d, without its entry", r, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		tot.recipients = uint64(len(want))
		if got := b.totals(); got != tot {
			tb.Errorf("totals %+v, entries say %+v", got, tot)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}
