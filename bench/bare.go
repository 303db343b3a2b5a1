package bench

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"mediaslot/internal/fsync"
)

// BareHandler is the physical limit for mediaslot's disk store: the least a
// Go HTTP server must do to accept a PUT as durably as the disk store does
// (write a temporary file, fsync it, link it into place, fsync the
// directory) and to serve it back (http.ServeContent of the *os.File, which
// net/http sends with sendfile). It checks nothing: no slot, token, size or
// type, no record. It copies with a 256 KiB buffer: io.Copy's 32 KiB
// (os.File.ReadFrom falls back to it for an HTTP body) halves the
// throughput on loopback, which measures syscalls, not the disk.
//
// PUT /<name> stores the body; GET /<name> returns it.
type BareHandler struct {
	Dir string
	seq atomic.Int64
}

// NewBareHandler returns a BareHandler storing files in dir, which it creates.
func NewBareHandler(dir string) (*BareHandler, error) {
	if err := os.MkdirAll(filepath.Join(dir, ".tmp"), 0o750); err != nil {
		return nil, err
	}
	return &BareHandler{Dir: dir}, nil
}

func (h *BareHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	dst := filepath.Join(h.Dir, name)
	switch r.Method {
	case http.MethodPut:
		if err := h.put(dst, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodGet, http.MethodHead:
		f, err := os.Open(dst)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, "", fi.ModTime(), f)
	case http.MethodDelete:
		_ = os.Remove(dst)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// put does what the disk store's Put does to make a file durable.
func (h *BareHandler) put(dst string, body io.Reader) error {
	tmpName := filepath.Join(h.Dir, ".tmp", "put-"+strconv.FormatInt(h.seq.Add(1), 10))
	tmp, err := os.OpenFile(tmpName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmpName)
	}()
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(writerOnly{tmp}, body, *buf); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	_ = os.Remove(dst) // the bench client reuses names
	if err := os.Link(tmpName, dst); err != nil {
		return err
	}
	return fsync.Dir(h.Dir)
}
