package upload

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/store/s3"
)

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu                 sync.Mutex
	uploads, downloads []int64
}

func (r *recorder) Uploaded(size int64, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uploads = append(r.uploads, size)
}

func (r *recorder) Downloaded(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.downloads = append(r.downloads, n)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%v | %v", r.uploads, r.downloads)
}

// The Observer hears of each complete PUT and of each GET answered with
// the file (bytes sent, sendfile or not), and of nothing else; StoredBytes
// follows complete uploads.
func TestObserverUploadsAndDownloads(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{}
	f.svc.opt.Observer = rec
	srv := httptest.NewServer(f.svc.Handler())
	defer srv.Close()
	u := func(s string) string { return strings.Replace(s, "https://files.example.net", srv.URL, 1) }

	data := []byte(strings.Repeat("0123456789", 100))
	slot := f.issue(t, "a.txt", int64(len(data)), "text/plain")
	if resp, b := do(t, "PUT", u(slot.PutURL), data[:10], ctype("text/plain")); resp.StatusCode != 400 {
		t.Fatalf("short PUT: %s %s", resp.Status, b)
	}
	if resp, b := do(t, "PUT", u(slot.PutURL), data, ctype("text/plain")); resp.StatusCode != 201 {
		t.Fatalf("PUT: %s %s", resp.Status, b)
	}
	do(t, "PUT", u(slot.PutURL), data, ctype("text/plain")) // 409
	do(t, "GET", u(slot.GetURL), nil, nil)
	do(t, "GET", u(slot.GetURL), nil, map[string]string{"Range": "bytes=600-"})
	do(t, "HEAD", u(slot.GetURL), nil, nil)
	do(t, "GET", u(slot.GetURL), nil, map[string]string{"If-None-Match": `"` + slot.ID + `"`}) // 304
	do(t, "GET", srv.URL+"/file/0123456789abcdef0123456789abcdef/x", nil, nil)                 // 404

	if got, want := rec.String(), "[1000] | [1000 400]"; got != want {
		t.Errorf("uploads | downloads = %q, want %q", got, want)
	}
	if n, err := f.svc.StoredBytes(); err != nil || n != int64(len(data)) {
		t.Errorf("StoredBytes = %d, %v; want %d", n, err, len(data))
	}
	f.svc.checkStore(t.Context()) // the disk store is probed too: writable here
	if err := f.svc.StoreErr(); err != nil {
		t.Errorf("StoreErr of the disk store: %v", err)
	}
}

// StoreErr of a store that can be probed says so until the first probe,
// then reports its outcome.
func TestStoreErr(t *testing.T) {
	f, st := memFixture(t, Download{})
	if err := f.svc.StoreErr(); !errors.Is(err, errNotChecked) {
		t.Errorf("before the first probe: %v", err)
	}
	st.SetCheckErr(s3.ErrUnreachable)
	f.svc.checkStore(context.Background())
	if err := f.svc.StoreErr(); !errors.Is(err, s3.ErrUnreachable) {
		t.Errorf("after probing an unreachable store: %v", err)
	}
	st.SetCheckErr(nil)
	f.svc.checkStore(context.Background())
	if err := f.svc.StoreErr(); err != nil {
		t.Errorf("after probing the store back: %v", err)
	}
}
