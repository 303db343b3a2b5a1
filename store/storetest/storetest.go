// Package storetest is the conformance suite every store.Store passes, so
// that the disk and S3 stores cannot drift apart in behaviour.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/store"
)

// Run runs the suite against the store made by newStore (called once per
// subtest, twice by Isolated). Stores from separate calls must not share
// objects: give each its own directory, or bucket prefix.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	body := bytes.Repeat([]byte("mediaslot"), 1000)

	t.Run("PutOpenStatDelete", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, "k1", bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		info, err := s.Stat(ctx, "k1")
		if err != nil || info.Size != int64(len(body)) {
			t.Fatalf("Stat = %+v, %v", info, err)
		}
		if got := ReadAll(t, s, "k1"); !bytes.Equal(got, body) {
			t.Fatalf("read %d bytes, want the %d written", len(got), len(body))
		}
		if err := s.Delete(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("Seek", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "k", body)
		f, err := s.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Seek(int64(len(body)/2), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(rest, body[len(body)/2:]) {
			t.Fatalf("after Seek got %d bytes, %v", len(rest), err)
		}
	})

	// The HTTP front serves objects with http.ServeContent, which seeks to the
	// end to learn the size, back, and to the start of a Range.
	t.Run("ServeContentRange", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "k", body)
		for _, tc := range []struct {
			rangeHdr   string
			status     int
			start, end int
		}{
			{"", http.StatusOK, 0, len(body)},
			{"bytes=100-199", http.StatusPartialContent, 100, 200},
			{"bytes=8000-", http.StatusPartialContent, 8000, len(body)},
			{"bytes=-10", http.StatusPartialContent, len(body) - 10, len(body)},
		} {
			f, err := s.Open(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/k", nil)
			if tc.rangeHdr != "" {
				req.Header.Set("Range", tc.rangeHdr)
			}
			rec := httptest.NewRecorder()
			http.ServeContent(rec, req, "k", time.Time{}, f)
			f.Close()
			if rec.Code != tc.status || !bytes.Equal(rec.Body.Bytes(), body[tc.start:tc.end]) {
				t.Errorf("Range %q: status %d, %d bytes; want %d, bytes %d-%d", tc.rangeHdr, rec.Code, rec.Body.Len(), tc.status, tc.start, tc.end)
			}
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "empty", nil)
		if got := ReadAll(t, s, "empty"); len(got) != 0 {
			t.Fatalf("read %d bytes", len(got))
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Open(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Open: %v", err)
		}
		if _, err := s.Stat(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat: %v", err)
		}
		if err := s.Delete(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete: %v", err)
		}
	})

	t.Run("WrongSizeLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []int64{int64(len(body)) - 1, int64(len(body)) + 1} {
			if err := s.Put(ctx, "short", bytes.NewReader(body), n); !errors.Is(err, store.ErrSize) {
				t.Fatalf("Put with declared size %d of %d bytes: %v, want ErrSize", n, len(body), err)
			}
			if _, err := s.Stat(ctx, "short"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("object visible after failed Put: %v", err)
			}
		}
	})

	t.Run("ReaderErrorLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		r := io.MultiReader(bytes.NewReader(body[:100]), errReader{})
		if err := s.Put(ctx, "broken", r, int64(len(body))); err == nil {
			t.Fatal("Put succeeded with a failing reader")
		}
		if _, err := s.Stat(ctx, "broken"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("object visible after failed Put: %v", err)
		}
	})

	t.Run("WriteOnce", func(t *testing.T) {
		s := newStore(t)
		put(t, s, "once", body)
		err := s.Put(ctx, "once", strings.NewReader("other"), 5)
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("second Put: %v, want ErrExists", err)
		}
		if got := ReadAll(t, s, "once"); !bytes.Equal(got, body) {
			t.Fatal("second Put changed the object")
		}
	})

	t.Run("ConcurrentPutOneWins", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := bytes.Repeat([]byte{byte('a' + i)}, 4096)
				errs[i] = s.Put(ctx, "race", bytes.NewReader(b), int64(len(b)))
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrExists):
				t.Errorf("concurrent Put: %v", err)
			}
		}
		got := ReadAll(t, s, "race")
		if ok != 1 || len(got) != 4096 || !bytes.Equal(got, bytes.Repeat(got[:1], 4096)) {
			t.Fatalf("%d Puts succeeded, object has %d bytes", ok, len(got))
		}
	})

	// Stores on one backend (S3: one bucket, different prefixes) must not
	// see or change each other's objects.
	t.Run("Isolated", func(t *testing.T) {
		s1, s2 := newStore(t), newStore(t)
		put(t, s1, "mine", body)
		if _, err := s2.Stat(ctx, "mine"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another store sees the object: %v", err)
		}
		put(t, s2, "mine", []byte("other"))
		if got := ReadAll(t, s1, "mine"); !bytes.Equal(got, body) {
			t.Fatal("a Put to another store changed the object")
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"", "../x", "a/b", ".tmp", "a b", strings.Repeat("k", 129), "k\x00"} {
			if err := s.Put(ctx, k, strings.NewReader("x"), 1); err == nil {
				t.Errorf("Put(%q) accepted", k)
			}
			if _, err := s.Open(ctx, k); err == nil {
				t.Errorf("Open(%q) accepted", k)
			}
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection reset") }

func put(t *testing.T, s store.Store, key string, b []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// ReadAll returns the whole object under key, failing the test on any error.
func ReadAll(t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	f, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
