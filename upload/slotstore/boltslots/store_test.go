package boltslots

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/slotstoretest"
)

// open returns a Store on a fresh file (or a copy of src) and the file.
func open(t *testing.T, src string) (*Store, *bolt.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mediaslot.db")
	if src != "" {
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	t.Cleanup(func() { w.Close(); db.Close() })
	s, err := Open(db, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestConformance(t *testing.T) {
	slotstoretest.Run(t, func(t *testing.T) slotstoretest.Opener {
		path := filepath.Join(t.TempDir(), "mediaslot.db")
		var db *bolt.DB
		var w *groupcommit.Writer
		t.Cleanup(func() {
			if db != nil {
				w.Close()
				db.Close()
			}
		})
		// each call is a restart: the file reopened, nothing of the
		// previous Store's memory kept
		return func(t *testing.T) slotstore.Store {
			if db != nil {
				w.Close()
				db.Close()
			}
			var err error
			if db, err = bolt.Open(path, 0o600, nil); err != nil {
				t.Fatal(err)
			}
			w = groupcommit.New(db)
			s, err := Open(db, w, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// A file written by the version before the slot store was an interface
// (testdata/v1.db: the upload package's own code wrote it, a pending slot
// and three stored files of three owners in two domains) opens and reads
// as it did: records, the pending slot's hold, the stored bytes per user,
// domain and in all, the daily uploads, and what is due when.
func TestOpensEarlierFile(t *testing.T) {
	s, db := open(t, filepath.Join("testdata", "v1.db"))
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
	rec, err := s.Lookup(ctx, "0190000000000000000000000000000b")
	if err != nil || !rec.Complete || rec.Owner != "alice@example.net" || rec.Filename != "done.png" || rec.Size != 2000 ||
		rec.StoredType != "image/png" || !rec.Stored.Equal(t0.Add(time.Minute)) || !rec.DeleteAfter.Equal(t0.Add(7*24*time.Hour)) {
		t.Fatalf("stored record: %+v %v", rec, err)
	}
	if rec, err := s.Lookup(ctx, "0190000000000000000000000000000a"); err != nil || rec.Complete || rec.Purpose != "message" || rec.ContentType != "image/jpeg" {
		t.Fatalf("pending record: %+v %v", rec, err)
	}
	if n, err := s.StoredBytes(ctx); err != nil || n != 2000+3000+400 {
		t.Fatalf("stored bytes %d %v", n, err)
	}
	now := t0.Add(4 * time.Minute)
	// alice: 1000 pending (held), 2000 stored, 2000 uploaded today;
	// example.net: 5000 stored
	for _, c := range []struct {
		q    slotstore.Quota
		over slotstore.Over
	}{
		{slotstore.Quota{Daily: 3000}, slotstore.Over{Scope: slotstore.Daily, Limit: 3000, Used: 2000, Held: 1000, Freed: t0.Truncate(time.Minute).Add(2*time.Minute + 24*time.Hour)}},
		{slotstore.Quota{User: 3000}, slotstore.Over{Scope: slotstore.User, Limit: 3000, Used: 2000, Held: 1000, Freed: t0.Add(7 * 24 * time.Hour).Truncate(time.Second)}},
		{slotstore.Quota{Domain: 6000}, slotstore.Over{Scope: slotstore.Domain, Limit: 6000, Used: 5000, Held: 1000, Freed: t0.Add(7 * 24 * time.Hour)}},
		{slotstore.Quota{Total: 6400}, slotstore.Over{Scope: slotstore.Total, Limit: 6400, Used: 5400, Held: 1000, Freed: t0.Add(24 * time.Hour)}},
	} {
		over, err := s.Issue(ctx, "0190000000000000000000000000000e", slotstore.Record{Owner: "alice@example.net", Size: 1, Expires: now.Add(time.Minute)}, now.Add(time.Minute), c.q, now)
		if err != nil || over == nil || over.Scope != c.over.Scope || over.Limit != c.over.Limit || over.Used != c.over.Used || over.Held != c.over.Held || !over.Freed.Equal(c.over.Freed) {
			t.Errorf("%+v: over %+v %v, want %+v", c.q, over, err, c.over)
		}
	}
	if ids, err := s.DuePending(ctx, t0.Add(6*time.Minute), 10); err != nil || len(ids) != 1 || ids[0].ID != "0190000000000000000000000000000a" {
		t.Fatalf("due pending %v %v", ids, err)
	}
	if ids, err := s.DueExpired(ctx, t0.Add(8*24*time.Hour), 10); err != nil || len(ids) != 2 || ids[0] != "0190000000000000000000000000000d" {
		t.Fatalf("due expired %v %v", ids, err)
	}
	// and it is written as it was: the buckets of that version, no other
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			for _, b := range allBuckets {
				if string(b) == string(name) {
					return nil
				}
			}
			t.Errorf("a bucket %q the earlier version did not have", name)
			return nil
		})
	})
}

// A slot request reads the owner's daily entries, so their number must not
// grow with the uploads: one an upload, 864,000 a day at the default slot
// rate, made every slot request of that owner take 145 ms and allocate 80
// MB. Uploads of one minute share an entry (at most 1441 in 24 hours), and
// the daily quota still counts every byte, for no less than 24 hours.
func TestDailyEntriesBoundedPerOwner(t *testing.T) {
	s, db := open(t, "")
	const uploads = 20000
	step := 24 * time.Hour / uploads
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).Add(time.Second / 3) // not on a minute
	if err := db.Update(func(tx *bolt.Tx) error {
		for i := range uploads {
			id := fmt.Sprintf("%032x", i)
			if err := issued(tx, id, record{Owner: "alice@example.net", Filename: "f", Size: 10, Expires: start.Add(time.Hour)}); err != nil {
				return err
			}
			if _, err := completed(tx, id, start.Add(time.Duration(i)*step), "application/octet-stream"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaily).ForEach(func(k, v []byte) error { n++; return nil })
	})
	if n > 1441 {
		t.Errorf("%d daily entries for %d uploads in 24 hours", n, uploads)
	}
	last := start.Add((uploads - 1) * step)
	ctx := context.Background()
	q := slotstore.Quota{Daily: uploads*10 + 5}
	if over, err := s.Issue(ctx, "a", record{Owner: "alice@example.net", Size: 5}, last.Add(time.Hour), q, last); err != nil || over != nil {
		t.Fatalf("a slot that fits: %+v %v", over, err)
	}
	over, err := s.Issue(ctx, "b", record{Owner: "alice@example.net", Size: 1}, last.Add(time.Hour), q, last)
	if err != nil || over == nil || over.Freed.Before(start.Add(24*time.Hour)) || over.Freed.After(start.Add(24*time.Hour+time.Minute)) {
		t.Fatalf("over the daily quota: %+v %v, want freed within the minute after %v", over, err, start.Add(24*time.Hour))
	}
}

// A request refused by a full domain (or user) quota reads a bounded
// number of the files that expire first, everybody's (or the user's), to
// say when it would pass: it read them all (2 µs each), which a full
// service of small files made seconds a request. Past the bound, the
// answer gives no date.
func TestDomainQuotaRefusalReadsBounded(t *testing.T) {
	s, db := open(t, "")
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	if err := db.Update(func(tx *bolt.Tx) error {
		add := func(id, owner string, size int64, deleteAfter time.Time) error {
			if err := issued(tx, id, record{Owner: owner, Filename: "f", Size: size, Expires: now.Add(time.Hour), DeleteAfter: deleteAfter}); err != nil {
				return err
			}
			_, err := completed(tx, id, now, "application/octet-stream")
			return err
		}
		// other domains' files, and empty files of alice's, expire first
		for i := range slotstore.FreedScan {
			if err := add(fmt.Sprintf("%032x", i), "x@other.net", 1, now.Add(time.Hour)); err != nil {
				return err
			}
			if err := add(fmt.Sprintf("%031x1", i), "alice@example.net", 0, now.Add(time.Hour)); err != nil {
				return err
			}
		}
		return add(fmt.Sprintf("%032x", slotstore.FreedScan), "alice@example.net", 1000, now.Add(2*time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []slotstore.Quota{{Domain: 1000}, {User: 1000}} {
		over, err := s.Issue(context.Background(), "a", record{Owner: "alice@example.net", Size: 10}, now.Add(time.Hour), q, now)
		if err != nil || over == nil || !over.Freed.IsZero() {
			t.Fatalf("%+v: over %+v %v: want no date past the files it reads", q, over, err)
		}
	}
}

// While a completion commits, a slot request whose snapshot already shows
// the upload counts it once: as usage, not also as a hold.
func TestHoldWhileCompleting(t *testing.T) {
	s, db := open(t, "")
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	q := slotstore.Quota{User: 1000}
	if over, err := s.Issue(ctx, "a", record{Owner: "alice@example.net", Size: 600, Expires: now.Add(time.Hour)}, now.Add(time.Hour), q, now); err != nil || over != nil {
		t.Fatal(over, err)
	}
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Complete's first and last steps, with the commit in between
	h := s.holds
	h.mu.Lock()
	h.completing["a"] = h.slots["a"]
	h.mu.Unlock()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := completed(tx, "a", now, "application/octet-stream")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if over, err := s.Issue(ctx, "b", record{Owner: "alice@example.net", Size: 400, Expires: now.Add(time.Hour)}, now.Add(time.Hour), q, now); err != nil || over != nil {
		t.Fatalf("an upload counted twice while its completion commits: %+v %v", over, err)
	}
	if over, _ := s.Issue(ctx, "c", record{Owner: "alice@example.net", Size: 1, Expires: now.Add(time.Hour)}, now.Add(time.Hour), q, now); over == nil {
		t.Fatal("over the quota")
	}
}

// Issue answers before the record's commit; Lookup finds it meanwhile,
// and once it is committed, in the file only.
func TestIssueAnswersBeforeCommit(t *testing.T) {
	s, db := open(t, "")
	ctx := context.Background()
	release := make(chan struct{})
	if err := s.w.Submit(ctx, func(*bolt.Tx) error { <-release; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	if over, err := s.Issue(ctx, "a", record{Owner: "alice@example.net", Size: 5, Expires: now.Add(time.Hour)}, now.Add(time.Hour), slotstore.Quota{}, now); err != nil || over != nil {
		t.Fatal(over, err)
	}
	if rec, err := s.Lookup(ctx, "a"); err != nil || rec.Size != 5 {
		t.Fatalf("lookup before the commit: %+v %v", rec, err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSlots).Get([]byte("a")) != nil {
			t.Error("committed while the writer was held: the test proves nothing")
		}
		return nil
	})
	close(release)
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.unsynced.Load("a"); ok {
		t.Error("the record stayed in memory after its commit")
	}
	if rec, err := s.Lookup(ctx, "a"); err != nil || rec.Size != 5 {
		t.Fatalf("lookup after the commit: %+v %v", rec, err)
	}
}

// This version writes what the earlier one wrote: the transitions of
// testdata/v1.db's slots, replayed, give the same keys and values in
// every bucket.
func TestWritesAsEarlierVersion(t *testing.T) {
	_, old := open(t, filepath.Join("testdata", "v1.db"))
	_, db := open(t, "")
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
	exp := t0.Add(5 * time.Minute).Truncate(time.Second)
	week := t0.Add(7 * 24 * time.Hour)
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, s := range []struct {
			id   string
			r    record
			done time.Duration // after t0; 0: pending
			typ  string
		}{
			{"0190000000000000000000000000000a", record{Owner: "alice@example.net", Filename: "pending.jpg", Size: 1000, ContentType: "image/jpeg", Purpose: "message", Issued: t0, Expires: exp, DeleteAfter: week}, 0, ""},
			{"0190000000000000000000000000000b", record{Owner: "alice@example.net", Filename: "done.png", Size: 2000, ContentType: "image/png", Issued: t0, Expires: exp, DeleteAfter: week}, time.Minute, "image/png"},
			{"0190000000000000000000000000000c", record{Owner: "bob@example.net", Filename: "avatar.png", Size: 3000, Purpose: "profile", Issued: t0, Expires: exp}, 2 * time.Minute, "application/octet-stream"},
			{"0190000000000000000000000000000d", record{Owner: "carol@example.org", Filename: "c.txt", Size: 400, ContentType: "text/plain", Issued: t0, Expires: exp, DeleteAfter: t0.Add(24 * time.Hour)}, 3 * time.Minute, "text/plain"},
		} {
			if err := issued(tx, s.id, s.r); err != nil {
				return err
			}
			if s.done > 0 {
				if _, err := completed(tx, s.id, t0.Add(s.done), s.typ); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dump := func(db *bolt.DB) map[string]string {
		m := map[string]string{}
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error { m[string(name)+"/"+string(k)] = string(v); return nil })
			})
		})
		return m
	}
	want, got := dump(old), dump(db)
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d keys written, the earlier version wrote %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: %q, the earlier version wrote %q", k, got[k], v)
		}
	}
}
