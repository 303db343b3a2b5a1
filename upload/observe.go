package upload

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"mediaslot/store"
)

// Observer is told what a Service's HTTP side does, for metrics. The
// package imports no metrics library: internal/metrics implements Observer
// with Prometheus. Methods run on request goroutines: they must be quick
// and safe for concurrent use.
type Observer interface {
	// Uploaded is called once for each file that became complete: after a
	// PUT through the HTTP front, with the time the PUT took, or when a
	// direct upload to the store (S3) is confirmed, with took = 0, since
	// mediaslot did not see it.
	Uploaded(size int64, took time.Duration)
	// Downloaded is called for each GET of a file answered with its bytes
	// (200, 206) or sent on to the store (302); bytes counts what mediaslot
	// itself sent of the body (0 for a redirect).
	Downloaded(bytes int64)
}

// errNotChecked is StoreErr's answer until a store that can be probed was.
var errNotChecked = errors.New("the file store has not been checked yet")

// StoreErr reports why the store cannot take uploads now, as of its last
// probe (see Run), or nil when it can. A store that cannot be probed always
// can; one that can (disk: a probe file; S3: the bucket) is not ready until
// its first probe succeeded. Slot requests are refused while StoreErr is not nil.
func (s *Service) StoreErr() error {
	if _, ok := s.opt.Store.(store.Checker); !ok {
		return nil
	}
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if !s.health.checked {
		return errNotChecked
	}
	return s.health.last
}

// StoredBytes returns the bytes of all complete files, from the quota
// accounting: cheap enough for every metrics scrape.
func (s *Service) StoredBytes() (int64, error) {
	return s.opt.Records.StoredBytes(context.Background())
}

// uploaded tells the Observer of a file that became complete.
func (s *Service) uploaded(size int64, took time.Duration) {
	if o := s.opt.Observer; o != nil {
		o.Uploaded(size, took)
	}
}

// countDownloads wraps the GET handler so that the Observer learns of
// every download and the bytes mediaslot sent for it.
func (s *Service) countDownloads(next http.HandlerFunc) http.Handler {
	if s.opt.Observer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		next(cw, r)
		if r.Method != http.MethodGet {
			return
		}
		switch cw.status {
		case http.StatusOK, http.StatusPartialContent, http.StatusFound:
			s.opt.Observer.Downloaded(cw.n)
		}
	})
}

// countingWriter counts the body bytes written through it and remembers
// the status. It passes ReadFrom on, so that http.ServeContent still sends
// files with sendfile.
type countingWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	n           int64
}

func (w *countingWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		w.n += n
		return n, err
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
