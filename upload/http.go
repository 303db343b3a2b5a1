package upload

import (
	"cmp"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mediaslot/refusal"
	"mediaslot/store"
)

// Handler returns the HTTP front: PUT /upload/<id>/<name>?e=&t= into the
// store, GET and HEAD /file/<id>/<name>, and CORS preflights for both.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /upload/{id}/{name...}", s.put)
	mux.Handle("GET /file/{id}/{name...}", s.countDownloads(s.get)) // also HEAD
	return bound(s.cors(mux))
}

// cors adds CORS headers to every answer for an allowed Origin, so that web
// clients (Converse.js, Movim) can upload and download, and answers preflights.
// Every answer says Vary: Origin, even with "*" and without an Origin: the
// headers differ with the Origin (or its absence), and a cache that kept an
// answer without them would serve it to a web client, which then fails.
func (s *Service) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.opt.CORSOrigin) > 0 {
			w.Header().Add("Vary", "Origin")
		}
		if o := r.Header.Get("Origin"); o != "" {
			if allow := s.allowOrigin(o); allow != "" {
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", allow)
				h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Type, ETag")
			}
		}
		if r.Method == http.MethodOptions {
			s.preflight(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) allowOrigin(origin string) string {
	for _, o := range s.opt.CORSOrigin {
		if o == "*" {
			return "*"
		}
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}

func (s *Service) preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Range")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
	w.WriteHeader(http.StatusNoContent)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.Error(w, msg, code)
}

func (s *Service) put(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		httpError(w, http.StatusNotFound, "no such upload slot")
		return
	}
	rec, err := s.lookup(r.Context(), id)
	if errors.Is(err, errNoSlot) {
		httpError(w, http.StatusNotFound, "no such upload slot")
		return
	} else if err != nil {
		// As for a slot request: the records cannot be reached (their
		// database down), a condition to wait out.
		s.log.Error("reading slot record", "slot", id, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the upload service cannot read the slot right now; try again later")
		return
	}
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("e"), 10, 64)
	if err != nil || exp != rec.Expires.Unix() || !s.sign.verify(q.Get("t"), id, rec.Size, rec.ContentType, rec.Expires) {
		httpError(w, http.StatusForbidden, "the upload URL is not valid for this slot")
		return
	}
	if !s.now().Before(rec.Expires) {
		httpError(w, http.StatusForbidden, "the upload URL has expired; request a new slot")
		return
	}
	if rec.Complete {
		httpError(w, http.StatusConflict, "this slot has already been uploaded to")
		return
	}
	switch {
	case r.ContentLength < 0, r.ContentLength == 0 && r.Header.Get("Content-Length") == "":
		httpError(w, http.StatusLengthRequired, "Content-Length is required and must equal the slot size")
		return
	case r.ContentLength > rec.Size:
		httpError(w, http.StatusRequestEntityTooLarge, "Content-Length is larger than the size in the slot request")
		return
	case r.ContentLength < rec.Size:
		httpError(w, http.StatusBadRequest, "Content-Length is smaller than the size in the slot request")
		return
	}
	ctype := r.Header.Get("Content-Type")
	if rec.ContentType != "" && normalType(ctype) != normalType(rec.ContentType) {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be "+rec.ContentType+", as declared in the slot request")
		return
	}
	served := rec.ContentType
	if served == "" {
		served = ctype
	}
	if normalType(served) == "" {
		served = "application/octet-stream"
	}
	if _, busy := s.active.LoadOrStore(id, false); busy {
		httpError(w, http.StatusConflict, "an upload to this slot is already in progress")
		return
	}
	defer s.active.Delete(id)
	if !s.startPut(rec.Owner) {
		httpError(w, http.StatusTooManyRequests, "too many uploads in progress for this account; try again when one has finished")
		return
	}
	defer s.endPut(rec.Owner)
	if ref, err := s.startUpload(r.Context(), id, rec, s.now()); ref != nil {
		overQuota(w, ref)
		return
	} else if errors.Is(err, errNoSlot) {
		httpError(w, http.StatusNotFound, "no such upload slot")
		return
	} else if err != nil {
		s.log.Error("starting an upload", "slot", id, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the upload service cannot take uploads right now; try again later")
		return
	}
	defer s.endUpload(r.Context(), id)
	s.active.Store(id, true)
	// A stalled client must not hold the upload open: each read of the body
	// must arrive within putIdleTimeout, and the whole body at putMinRate.
	body := &idleReader{r: r.Body, rc: http.NewResponseController(w), until: time.Now().Add(atRate(rec.Size, putMinRate, putGrace))}

	start := s.now()
	err = s.opt.Store.Put(r.Context(), id, body, rec.Size)
	if errors.Is(err, store.ErrExists) {
		// The slot is pending, yet its file is there: left by a crash
		// between the write and its record. A whole one is this slot's
		// upload (only its owner had the URL); anything else is deleted
		// and this body stored instead.
		if _, err = s.whole(r.Context(), id, rec); errors.Is(err, errNoSlot) {
			err = s.opt.Store.Put(r.Context(), id, body, rec.Size)
		}
	}
	if err != nil {
		s.putFailed(w, id, err)
		return
	}
	_, was, err := s.complete(r.Context(), id, served)
	if err != nil {
		s.log.Error("recording completed upload", "slot", id, "err", err)
		_ = s.opt.Store.Delete(context.WithoutCancel(r.Context()), id)
		httpError(w, http.StatusServiceUnavailable, "the upload could not be recorded; try again later")
		return
	}
	if was {
		// another PUT completed the slot since its record was read
		httpError(w, http.StatusConflict, "this slot has already been uploaded to")
		return
	}
	s.log.Debug("upload complete", "slot", id, "owner", rec.Owner, "size", rec.Size, "duration", s.now().Sub(start))
	s.uploaded(rec.Size, s.now().Sub(start))
	w.WriteHeader(http.StatusCreated)
}

// overQuota refuses a PUT that would take its owner over a quota (lowered
// since the slot was issued, or the slot's hold has ended) with the status
// of the refusal's kind (413 Content Too Large for OverQuota) and a
// Retry-After, which RFC 9110 (15.5.14) gives 413 when the condition is
// temporary, with the same text the slot request would get.
func overQuota(w http.ResponseWriter, ref *refusal.Error) {
	if !ref.RetryAt.IsZero() {
		w.Header().Set("Retry-After", ref.RetryAt.UTC().Format(http.TimeFormat))
	}
	httpError(w, ref.Kind.Status(), ref.Text)
}

// putFailed answers a failed store write; nothing of the upload was kept.
func (s *Service) putFailed(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, store.ErrSize):
		httpError(w, http.StatusBadRequest, "the body length differs from Content-Length")
	case errors.Is(err, store.ErrExists):
		httpError(w, http.StatusConflict, "this slot has already been uploaded to")
	case errors.Is(err, syscall.ENOSPC):
		s.log.Error("store full", "slot", id, "err", err)
		httpError(w, http.StatusInsufficientStorage, "the upload service is out of storage")
	case storeFault(err):
		s.log.Error("store write failed", "slot", id, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the upload service cannot store files right now; try again later")
	default:
		// Mostly clients that hang up; the answer rarely reaches anyone.
		s.log.Info("upload failed", "slot", id, "err", err)
		httpError(w, http.StatusBadRequest, "the upload did not complete")
	}
}

// inline reports whether browsers may show this type in place. Everything
// else is served as an attachment so that uploaded HTML or SVG cannot run
// script in the download origin.
func inline(mediaType string) bool {
	switch {
	case mediaType == "image/svg+xml":
		return false
	case strings.HasPrefix(mediaType, "image/"), strings.HasPrefix(mediaType, "video/"), strings.HasPrefix(mediaType, "audio/"):
		return true
	}
	return mediaType == "text/plain"
}

// file returns the record of a complete upload, confirming on first sight
// a direct (S3) upload, or one whose record a crash cut off (disk). It
// answers the request itself when it returns false.
func (s *Service) file(w http.ResponseWriter, r *http.Request, id string) (record, bool) {
	rec, err := record{}, errNoSlot
	if validID(id) {
		rec, err = s.lookup(r.Context(), id)
	}
	if err == nil && !rec.Complete {
		err = errNoSlot
		if _, busy := s.active.Load(id); !busy {
			rec, err = s.confirm(r.Context(), id, rec)
		}
	}
	switch {
	case errors.Is(err, errNoSlot):
		httpError(w, http.StatusNotFound, "no such file")
		return rec, false
	case err != nil:
		s.log.Error("reading file record", "slot", id, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the file cannot be read right now")
		return rec, false
	case !rec.DeleteAfter.IsZero() && !s.now().Before(rec.DeleteAfter):
		httpError(w, http.StatusGone, "this file has expired")
		return rec, false
	}
	return rec, true
}

// startPut counts a PUT of owner's; false if they have too many running.
func (s *Service) startPut(owner string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putting == nil {
		s.putting = map[string]int{}
	}
	if n := s.opt.MaxUploadsPerUser; n > 0 && s.putting[owner] >= n {
		return false
	}
	s.putting[owner]++
	return true
}

func (s *Service) endPut(owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putting[owner]--; s.putting[owner] <= 0 {
		delete(s.putting, owner)
	}
}

// A download must go out at getMinRate bytes a second or better, after
// getGrace, or the connection is closed.
var (
	getMinRate int64 = 32 << 10
	getGrace         = time.Minute
)

// An upload's body must arrive at putMinRate bytes a second or better,
// after putGrace (a 100 MiB file: 7 hours), so that a client trickling a
// byte now and then cannot hold its connection for ever. Slower than
// getMinRate: phones upload over worse links than servers send.
var (
	putMinRate int64 = 4 << 10
	putGrace         = time.Minute
)

// atRate is how long size bytes may take at rate bytes a second, after grace.
func atRate(size, rate int64, grace time.Duration) time.Duration {
	return grace + time.Duration(float64(size)/float64(rate)*float64(time.Second))
}

// putIdleTimeout is how long an upload may send nothing before it is cut.
var putIdleTimeout = 30 * time.Second

// idleReader extends the connection's read deadline before each read, so
// an upload may take as long as it needs while data flows (up to until),
// but no longer than putIdleTimeout without any. The answer's write
// deadline moves along, so that it may still go out answerTimeout after
// the last read.
type idleReader struct {
	r     io.Reader
	rc    *http.ResponseController
	until time.Time
}

func (i *idleReader) Read(p []byte) (int, error) {
	d := time.Now().Add(putIdleTimeout)
	if d.After(i.until) {
		d = i.until
	}
	_ = i.rc.SetReadDeadline(d)
	_ = i.rc.SetWriteDeadline(d.Add(answerTimeout))
	return i.r.Read(p)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, ok := s.file(w, r, id)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", rec.StoredType)
	disp := "attachment"
	if inline(normalType(rec.StoredType)) {
		disp = "inline"
	}
	if v := mime.FormatMediaType(disp, map[string]string{"filename": rec.Filename}); v != "" {
		disp = v
	}
	h.Set("Content-Disposition", disp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	h.Set("ETag", `"`+id+`"`)
	modified := rec.Stored.Truncate(time.Second)

	if s.direct != nil && (r.Method == http.MethodHead || s.opt.Download.Mode != Proxy) {
		// Answered from the record: presigned GET URLs refuse HEAD, and
		// clients (Conversations) HEAD for the size before they download.
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
		if match := r.Header.Get("If-None-Match"); match == `"`+id+`"` || match == "*" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			h.Set("Accept-Ranges", "bytes")
			h.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
			w.WriteHeader(http.StatusOK)
			return
		}
		s.redirect(w, r, id, rec.StoredType, disp)
		return
	}
	f, err := s.opt.Store.Open(r.Context(), id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.log.Warn("file recorded but missing from store", "slot", id)
			httpError(w, http.StatusNotFound, "no such file")
			return
		}
		s.log.Error("opening stored file", "slot", id, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the file cannot be read right now")
		return
	}
	defer f.Close()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	// A reader that stops reading must not hold the file open forever: the
	// whole answer must go out at getMinRate or better, after a minute's
	// grace. The read deadline (the server's ReadTimeout) moves along: when
	// it passes, net/http cancels the request's context, which would cut a
	// download streamed from S3.
	deadline := time.Now().Add(atRate(rec.Size, getMinRate, getGrace))
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline)
	if v := r.Header.Get("Range"); v != "" {
		r = r.Clone(r.Context())
		if v, ok := boundRange(v, rec.Size); ok {
			r.Header.Set("Range", v)
		} else {
			r.Header.Del("Range")
		}
	}
	http.ServeContent(&paced{ResponseWriter: w, rc: rc, end: deadline}, r, "", modified, f)
}

// pacedChunk is how much of a file goes out with one sendfile call, each
// with a write deadline of its own.
const pacedChunk = 1 << 20

// paced keeps a download moving: each piece of it (a chunk of the file
// sent with sendfile, a write) must go out within answerTimeout plus its
// time at getMinRate, and the whole answer by end. Without the pieces'
// deadlines, a client that reads nothing held its connection and the open
// file until end: 53 minutes for 100 MiB, at no cost in bandwidth.
type paced struct {
	http.ResponseWriter
	rc  *http.ResponseController
	end time.Time
}

// allow sets the write deadline for the next n bytes.
func (p *paced) allow(n int64) {
	d := time.Now().Add(answerTimeout + atRate(n, getMinRate, 0))
	if d.After(p.end) {
		d = p.end
	}
	_ = p.rc.SetWriteDeadline(d)
}

func (p *paced) Write(b []byte) (int, error) {
	p.allow(int64(len(b)))
	return p.ResponseWriter.Write(b)
}

// ReadFrom sends a file (http.ServeContent's io.LimitedReader of it) chunk
// by chunk, each chunk still with sendfile, which sees through one
// io.LimitedReader of an *os.File but not through two.
func (p *paced) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	lr, limited := src.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(struct{ io.Writer }{p}, src)
	}
	var sent int64
	for lr.N > 0 {
		n := min(lr.N, pacedChunk)
		p.allow(n)
		k, err := rf.ReadFrom(&io.LimitedReader{R: lr.R, N: n})
		sent += k
		lr.N -= k
		if err != nil || k < n {
			return sent, err
		}
	}
	return sent, nil
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (p *paced) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// maxRanges bounds the ranges one GET may ask for: 10,000 one-byte ranges
// once made a multipart answer 74 times the size of the file.
const maxRanges = 16

// badRange is a Range header that http.ServeContent answers 416.
const badRange = "bytes=-"

// boundRange rewrites a Range header for http.ServeContent, which answers
// conditionals, If-Range and the multipart body. More than maxRanges ranges,
// or overlapping ones, and the header is dropped (ok false): the whole file
// is answered (200), as RFC 9110 §14.2 allows, so that an answer is never
// more than the file and maxRanges part headers. A set with nothing
// satisfiable ("bytes=-0" asks for the last 0 bytes; ServeContent answered
// it 206 with an empty body) becomes one that ServeContent answers 416. Of
// any other set the satisfiable ranges stay. A header that does not parse
// becomes badRange, which ServeContent answers 416: never the header
// itself, whose parts past the bad one would go through uncounted
// (ServeContent skips a part that starts past the end without reading its
// end, so "30000-x" and 10,000 ranges after it got all 10,000 answered).
func boundRange(v string, size int64) (string, bool) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return v, true
	}
	type span struct{ first, last int64 }
	var spans []span
	n := 0
	for part := range strings.SplitSeq(spec, ",") {
		part = textproto.TrimString(part)
		if part == "" {
			continue
		}
		if n++; n > maxRanges {
			return "", false
		}
		first, last, ok := strings.Cut(part, "-")
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		if !ok {
			return badRange, true
		}
		if first == "" { // the last k bytes
			k, err := strconv.ParseInt(last, 10, 64)
			if err != nil || k < 0 {
				return badRange, true
			}
			if k > 0 && size > 0 {
				spans = append(spans, span{max(0, size-k), size - 1})
			}
			continue
		}
		a, err := strconv.ParseInt(first, 10, 64)
		if err != nil || a < 0 {
			return badRange, true
		}
		b := size - 1
		if last != "" {
			if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
				return badRange, true
			}
			b = min(b, size-1)
		}
		if a < size {
			spans = append(spans, span{a, b})
		}
	}
	if n == 0 {
		return v, true
	}
	if len(spans) == 0 {
		return "bytes=" + strconv.FormatInt(size, 10) + "-", true
	}
	sorted := slices.SortedFunc(slices.Values(spans), func(x, y span) int { return cmp.Compare(x.first, y.first) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].first <= sorted[i-1].last {
			return "", false
		}
	}
	parts := make([]string, len(spans))
	for i, s := range spans {
		parts[i] = strconv.FormatInt(s.first, 10) + "-" + strconv.FormatInt(s.last, 10)
	}
	return "bytes=" + strings.Join(parts, ","), true
}

// redirect sends a GET on to the store: a fresh presigned URL, or the
// public URL of the object.
func (s *Service) redirect(w http.ResponseWriter, r *http.Request, id, ctype, disp string) {
	var target string
	var err error
	if s.opt.Download.Mode == Public {
		target, err = s.direct.PublicURL(s.opt.Download.PublicURL, id)
	} else {
		target, err = s.direct.PresignGet(r.Context(), id, s.opt.Download.URLLifetime, ctype, disp)
		// The target expires: never let a cache keep this answer.
		w.Header().Set("Cache-Control", "no-store")
	}
	if err != nil {
		s.log.Error("making the download URL", "slot", id, "err", err)
		httpError(w, http.StatusServiceUnavailable, "the file cannot be read right now")
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}
