package upload

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/store"
)

// Handler returns the HTTP front: PUT /upload/<id>/<name>?e=&t= into the
// store, GET and HEAD /file/<id>/<name>, and CORS preflights for both.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /upload/{id}/{name...}", s.put)
	mux.Handle("GET /file/{id}/{name...}", s.countDownloads(s.get)) // also HEAD
	return s.cors(mux)
}

// cors adds CORS headers to every answer for an allowed Origin, so that web
// clients (Converse.js, Movim) can upload and download, and answers preflights.
func (s *Service) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			if allow := s.allowOrigin(o); allow != "" {
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", allow)
				h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Type, ETag")
				if allow != "*" {
					h.Add("Vary", "Origin")
				}
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
	rec, err := s.lookup(id)
	if errors.Is(err, errNoSlot) {
		httpError(w, http.StatusNotFound, "no such upload slot")
		return
	} else if err != nil {
		s.log.Error("reading slot record", "slot", id, "err", err)
		httpError(w, http.StatusInternalServerError, "cannot read the slot")
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
	if _, busy := s.active.LoadOrStore(id, struct{}{}); busy {
		httpError(w, http.StatusConflict, "an upload to this slot is already in progress")
		return
	}
	defer s.active.Delete(id)
	if !s.startPut(rec.Owner) {
		httpError(w, http.StatusTooManyRequests, "too many uploads in progress for this account; try again when one has finished")
		return
	}
	defer s.endPut(rec.Owner)
	// A stalled client must not hold the upload open: each read of the body
	// must arrive within putIdleTimeout.
	body := &idleReader{r: r.Body, rc: http.NewResponseController(w)}

	start := s.now()
	if err := s.opt.Store.Put(r.Context(), id, body, rec.Size); err != nil {
		s.putFailed(w, id, err)
		return
	}
	err = s.opt.Writer.Update(context.WithoutCancel(r.Context()), func(tx *bolt.Tx) error {
		_, err := completed(tx, id, s.now(), served)
		return err
	})
	if err != nil {
		s.log.Error("recording completed upload", "slot", id, "err", err)
		_ = s.opt.Store.Delete(context.WithoutCancel(r.Context()), id)
		httpError(w, http.StatusInternalServerError, "the upload could not be recorded")
		return
	}
	s.log.Debug("upload complete", "slot", id, "owner", rec.Owner, "size", rec.Size, "duration", s.now().Sub(start))
	s.uploaded(rec.Size, s.now().Sub(start))
	w.WriteHeader(http.StatusCreated)
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

// file returns the record of a complete upload, confirming a direct (S3)
// upload on first sight. It answers the request itself when it returns false.
func (s *Service) file(w http.ResponseWriter, r *http.Request, id string) (record, bool) {
	rec, err := record{}, errNoSlot
	if validID(id) {
		rec, err = s.lookup(id)
	}
	if err == nil && !rec.Complete {
		err = errNoSlot
		if s.direct != nil {
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

// putIdleTimeout is how long an upload may send nothing before it is cut.
var putIdleTimeout = 30 * time.Second

// idleReader extends the connection's read deadline before each read, so
// an upload may take as long as it needs while data flows, but no longer
// than putIdleTimeout without any.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (i *idleReader) Read(p []byte) (int, error) {
	_ = i.rc.SetReadDeadline(time.Now().Add(putIdleTimeout))
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
	// whole answer must go out at getMinRate or better, after a minute's grace.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(getGrace + time.Duration(float64(rec.Size)/float64(getMinRate)*float64(time.Second))))
	http.ServeContent(w, r, "", modified, f)
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
