package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"mediaslot/store"
)

// failingStore is a store whose Put reads the body and then fails with err.
type failingStore struct {
	store.Store
	err error
}

func (f failingStore) Put(_ context.Context, _ string, r io.Reader, _ int64) error {
	_, _ = io.Copy(io.Discard, r)
	return f.err
}

// A store that cannot write is the server's fault: 503 (507 when full),
// never the 400 that tells the client its upload was broken.
func TestPutStoreFaults(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"read-only", &fs.PathError{Op: "open", Path: "/files/.tmp/put-1", Err: syscall.EROFS}, http.StatusServiceUnavailable},
		{"permission", &fs.PathError{Op: "open", Path: "/files/.tmp/put-1", Err: syscall.EACCES}, http.StatusServiceUnavailable},
		{"io error", fmt.Errorf("syncing: %w", &fs.PathError{Op: "sync", Path: "/files/.tmp/put-1", Err: syscall.EIO}), http.StatusServiceUnavailable},
		{"link", &os.LinkError{Op: "link", Old: "a", New: "b", Err: syscall.EROFS}, http.StatusServiceUnavailable},
		{"full", &fs.PathError{Op: "write", Path: "/files/.tmp/put-1", Err: syscall.ENOSPC}, http.StatusInsufficientStorage},
		{"client hung up", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, http.StatusBadRequest},
		{"body ended early", io.ErrUnexpectedEOF, http.StatusBadRequest},
		{"wrong length", store.ErrSize, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureWith(t, failingStore{err: c.err}, Download{})
			slot := f.issue(t, "x.bin", 10, "application/octet-stream")
			resp, body := do(t, "PUT", f.url(slot.PutURL), []byte(strings.Repeat("x", 10)), ctype("application/octet-stream"))
			if resp.StatusCode != c.want {
				t.Fatalf("PUT with the store failing with %v: %s %s, want %d", c.err, resp.Status, body, c.want)
			}
			if errors.Is(c.err, syscall.ENOSPC) || c.want != http.StatusServiceUnavailable {
				return
			}
			if !strings.Contains(string(body), "try again later") {
				t.Errorf("body %q does not tell the client to retry", body)
			}
		})
	}
}
