package upload

import (
	"io"
	"net/http"
	"time"
)

// answerTimeout bounds how long an answer may take to go out: a client
// that pipelines requests and reads none of the answers cannot hold a
// connection once its socket buffers are full. A GET of a file extends it
// by the file's size (getMinRate), and each read of an upload's body by
// putIdleTimeout.
var answerTimeout = 30 * time.Second

// lingerTimeout is how long a client has, once the answer is written, to
// finish sending a request body that the answer did not read, before the
// connection is closed; none if reading the body failed already.
var lingerTimeout = 5 * time.Second

// bound keeps every connection within its timeouts, whatever the client
// sends or withholds. An answer that leaves the request body unread (the
// early errors of a PUT, a GET or an OPTIONS that declares a body, the mux's
// 404 and 405) closes the connection (Connection: close) and gives the
// client lingerTimeout to send what it declared. net/http would otherwise
// wait, with no deadline, for up to 256 KiB of a body the client never
// sends, before answering at all or (with Connection: close, or after an
// Expect: 100-continue) before closing. A client that waits for
// 100 Continue gets the final status instead, since nothing reads the body.
func bound(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(answerTimeout))
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := &watchedBody{ReadCloser: r.Body, left: r.ContentLength}
		r = r.WithContext(r.Context()) // a shallow copy, for the new Body
		r.Body = body
		bw := &unreadCloser{ResponseWriter: w, rc: rc, body: body}
		next.ServeHTTP(bw, r)
		bw.commit()
	})
}

// watchedBody tells whether a request body was read to its end, or
// failed (a read deadline passed, a malformed chunk).
type watchedBody struct {
	io.ReadCloser
	left   int64 // bytes declared and not read yet; -1 for a chunked body
	eof    bool
	failed bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.failed = true
	}
	return n, err
}

func (b *watchedBody) read() bool { return b.eof || b.left == 0 }

// unreadCloser closes the connection after an answer that is committed
// (its header written) while the request body is not read to its end.
type unreadCloser struct {
	http.ResponseWriter
	rc        *http.ResponseController
	body      *watchedBody
	committed bool
}

// commit is called before the header goes out, and once the handler is
// done (for an answer it wrote nothing of).
func (w *unreadCloser) commit() {
	if w.committed {
		return
	}
	w.committed = true
	if w.body.read() {
		return
	}
	w.Header().Set("Connection", "close")
	linger := lingerTimeout
	if w.body.failed {
		linger = 0 // the client had its time
	}
	_ = w.rc.SetReadDeadline(time.Now().Add(linger))
}

func (w *unreadCloser) WriteHeader(code int) {
	if code >= 200 {
		w.commit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *unreadCloser) Write(p []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(p)
}

// ReadFrom passes the file of a GET on to the connection's ReadFrom, so
// that it still goes out with sendfile.
func (w *unreadCloser) ReadFrom(r io.Reader) (int64, error) {
	w.commit()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *unreadCloser) Unwrap() http.ResponseWriter { return w.ResponseWriter }
