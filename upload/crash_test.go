package upload

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediaslot/store/disk"
)

// crashAfterStore leaves what a kill -9 between storing a PUT's file and
// recording its completion leaves: a pending slot whose file is whole in
// the store. It returns the slot and the bytes.
func crashAfterStore(t *testing.T, f *fixture) (Slot, []byte) {
	t.Helper()
	body := bytes.Repeat([]byte("crash "), 1000)
	s := f.issue(t, "photo.jpg", int64(len(body)), "")
	f.sync(t)
	if err := f.svc.opt.Store.Put(context.Background(), s.ID, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	return s, body
}

func diskFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "files")
	st, err := disk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, st, Download{}), dir
}

// A file stored whole before a crash cut off its record is served after
// the restart, recorded by the reconciliation at start with the type its
// name says, and counted against the quotas.
func TestCrashBeforeRecordReconciledAtStart(t *testing.T) {
	forEachRecords(t, testCrashBeforeRecordReconciledAtStart)
}

func testCrashBeforeRecordReconciledAtStart(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	s, body := crashAfterStore(t, f)
	g := f.restart(t)
	g.svc.reconcile(context.Background())
	if rec, err := g.svc.lookup(context.Background(), s.ID); err != nil || !rec.Complete || rec.StoredType != "image/jpeg" {
		t.Fatalf("record after the reconciliation at start: %+v %v", rec, err)
	}
	resp, got := do(t, "GET", g.url(s.GetURL), nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET after restart: %s, %d bytes", resp.Status, len(got))
	}
	if n, _ := g.svc.StoredBytes(); n != int64(len(body)) {
		t.Fatalf("stored bytes %d, want %d", n, len(body))
	}
}

// Without waiting for the reconciliation, the slot's GET records the file
// on first sight, and so does another PUT to the slot (201, not 409).
func TestCrashBeforeRecordGetAndPut(t *testing.T) {
	t.Run("GET", func(t *testing.T) {
		f := newFixture(t)
		s, body := crashAfterStore(t, f)
		g := f.restart(t)
		if resp, got := do(t, "GET", g.url(s.GetURL), nil, nil); resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("GET after restart: %s, %d bytes", resp.Status, len(got))
		}
	})
	t.Run("PUT", func(t *testing.T) {
		f := newFixture(t)
		s, body := crashAfterStore(t, f)
		g := f.restart(t)
		if resp, msg := do(t, "PUT", g.url(s.PutURL), body, ctype("image/jpeg")); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT retried after restart: %s %q, want 201", resp.Status, msg)
		}
		if resp, got := do(t, "GET", g.url(s.GetURL), nil, nil); resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("GET: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(got))
		}
		if resp, _ := do(t, "PUT", g.url(s.PutURL), body, nil); resp.StatusCode != http.StatusConflict {
			t.Fatalf("third PUT: %s, want 409", resp.Status)
		}
	})
}

// A file under a pending slot that is not whole (a disk that lost part of
// it) is deleted, not served, and the retried PUT stores its body.
func TestCrashPartialFileReplacedByPut(t *testing.T) {
	f, dir := diskFixture(t)
	body := []byte("the whole body")
	s := f.issue(t, "a.txt", int64(len(body)), "text/plain")
	if err := os.MkdirAll(filepath.Join(dir, s.ID[:2]), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, s.ID[:2], s.ID), body[:5], 0o640); err != nil {
		t.Fatal(err)
	}
	g := f.restart(t)
	g.svc.reconcile(context.Background())
	if resp, got := do(t, "GET", g.url(s.GetURL), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET of a partial file: %s %q", resp.Status, got)
	}
	if resp, msg := do(t, "PUT", g.url(s.PutURL), body, ctype("text/plain")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT after a partial file: %s %q, want 201", resp.Status, msg)
	}
	if resp, got := do(t, "GET", g.url(s.GetURL), nil, nil); resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s %q", resp.Status, got)
	}
}

// The sweeper keeps a whole file whose record a crash cut off, where it
// used to delete it; it still deletes abandoned slots.
func TestSweepKeepsWholeFileOfCrash(t *testing.T) { forEachRecords(t, testSweepKeepsWholeFileOfCrash) }

func testSweepKeepsWholeFileOfCrash(t *testing.T, rb recordsBackend) {
	f := newDiskFixture(t, rb)
	s, _ := crashAfterStore(t, f)
	never := f.issue(t, "n.bin", 10, "")
	g := f.restart(t)
	g.clock.add(f.svc.opt.SlotLifetime + sweepGrace + time.Second)
	if n, err := g.svc.Sweep(context.Background()); err != nil || n != 2 {
		t.Fatalf("Sweep: %d %v", n, err)
	}
	if rec, err := g.svc.lookup(context.Background(), s.ID); err != nil || !rec.Complete {
		t.Fatalf("the crashed upload: %+v %v", rec, err)
	}
	if _, err := g.svc.lookup(context.Background(), never.ID); err == nil || !strings.Contains(err.Error(), "no such slot") {
		t.Fatalf("abandoned slot: %v", err)
	}
}
