// Package memstore is an in-memory store for tests: a store.Store that
// passes store/storetest, a store.Presigner whose presigned URLs a
// loopback HTTP server (the Store is its handler) honours as an S3 server
// honours its own, and a store.Checker whose outcome the test sets. It lets
// unit tests exercise upload's S3-mode logic (presigned PUTs, Seal, the
// download modes, the health probe) without a real S3 server; the
// versitygw and MinIO tests remain the integration tests of store/s3.
//
// Presigned URLs are plain to read: the key is the last path element and
// the query says what the URL allows (size, type, expires, as a Unix time,
// and for GETs the response type and disposition); a random token binds
// them, so a URL whose query or path was changed is refused as a changed
// signature is.
package memstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/store"
)

// Store keeps objects in memory. Its zero value is not usable: use New or Serve.
type Store struct {
	base string // URL under which the Store is served

	mu       sync.Mutex
	objects  map[string]object // sealed or Put objects
	incoming map[string]object // what presigned PUT URLs wrote, until Seal
	grants   map[string]grant  // by token; never pruned (a test's lifetime)
	now      func() time.Time
	checkErr error
}

type object struct {
	data []byte
	info store.Info
}

// grant is what one presigned URL allows.
type grant struct {
	method, path, key  string
	size               int64  // PUT
	contentType        string // PUT: the type the client must send; GET: the response's
	disposition        string // GET
	expires            time.Time
	signsContentLength bool
}

// New returns an empty store whose presigned URLs start with base, where
// the caller serves the Store (an http.Handler).
func New(base string) *Store {
	return &Store{
		base:     strings.TrimRight(base, "/"),
		objects:  map[string]object{},
		incoming: map[string]object{},
		grants:   map[string]grant{},
		now:      time.Now,
	}
}

// Serve returns an empty store served on a loopback httptest.Server that
// is closed when tb ends.
func Serve(tb testing.TB) *Store {
	s := New("")
	srv := httptest.NewServer(s)
	tb.Cleanup(srv.Close)
	s.base = srv.URL
	return s
}

// SetClock makes the store judge the expiry of its URLs by now instead of
// time.Now, so that a test with a fake clock can let URLs expire at once.
func (s *Store) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetCheckErr makes Check report err from now on; nil makes the store
// healthy again.
func (s *Store) SetCheckErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkErr = err
}

// Check implements store.Checker.
func (s *Store) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkErr
}

// Put implements store.Store. It reads the whole body before it stores
// anything, so a failed Put leaves nothing.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if !store.ValidKey(key) {
		return store.ErrKey
	}
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return err
	}
	if int64(len(data)) != size {
		return store.ErrSize
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[key]; ok {
		return store.ErrExists
	}
	s.objects[key] = object{data: data, info: store.Info{Size: size}}
	return nil
}

// reader is an object's bytes as Open returns them.
type reader struct{ *bytes.Reader }

func (reader) Close() error { return nil }

// Open implements store.Store.
func (s *Store) Open(_ context.Context, key string) (io.ReadSeekCloser, error) {
	o, err := s.object(key)
	if err != nil {
		return nil, err
	}
	return reader{bytes.NewReader(o.data)}, nil
}

// Stat implements store.Store.
func (s *Store) Stat(_ context.Context, key string) (store.Info, error) {
	o, err := s.object(key)
	return o.info, err
}

func (s *Store) object(key string) (object, error) {
	if !store.ValidKey(key) {
		return object{}, store.ErrKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[key]
	if !ok {
		return object{}, store.ErrNotFound
	}
	return o, nil
}

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	if !store.ValidKey(key) {
		return store.ErrKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[key]; !ok {
		return store.ErrNotFound
	}
	delete(s.objects, key)
	return nil
}

// PresignPut implements store.Presigner, as store/s3 does: the URL writes
// key's incoming object, which Seal moves out of its reach, and the server
// refuses a body of another length, or of another type when contentType is
// not "". A size of 0 signs neither. A ttl of 0 means 15 minutes.
func (s *Store) PresignPut(_ context.Context, key string, size int64, contentType string, ttl time.Duration) (string, http.Header, error) {
	if !store.ValidKey(key) {
		return "", nil, store.ErrKey
	}
	if size < 0 {
		return "", nil, store.ErrSize
	}
	headers := http.Header{}
	if contentType != "" {
		headers.Set("Content-Type", contentType)
	}
	g := grant{method: http.MethodPut, key: key, size: size, contentType: contentType, signsContentLength: size > 0}
	if size == 0 {
		g.contentType = ""
	}
	q := url.Values{"size": {strconv.FormatInt(size, 10)}}
	if g.contentType != "" {
		q.Set("type", g.contentType)
	}
	u, err := s.presign(g, "/incoming/", q, ttl)
	if err != nil {
		return "", nil, err
	}
	return u, headers, nil
}

// PresignGet implements store.Presigner. The URL answers GET only (a
// presigned S3 GET URL refuses HEAD), with the given type and disposition.
func (s *Store) PresignGet(_ context.Context, key string, ttl time.Duration, contentType, disposition string) (string, error) {
	if !store.ValidKey(key) {
		return "", store.ErrKey
	}
	q := url.Values{}
	if contentType != "" {
		q.Set("response-content-type", contentType)
	}
	if disposition != "" {
		q.Set("response-content-disposition", disposition)
	}
	return s.presign(grant{method: http.MethodGet, key: key, contentType: contentType, disposition: disposition}, "/object/", q, ttl)
}

func (s *Store) presign(g grant, dir string, q url.Values, ttl time.Duration) (string, error) {
	if ttl < 0 {
		return "", fmt.Errorf("memstore: presign URL duration must be 0 or greater, %v", ttl)
	}
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	token := rand.Text()
	g.path = dir + g.key
	s.mu.Lock()
	g.expires = s.now().Add(ttl).Truncate(time.Second)
	s.grants[token] = g
	s.mu.Unlock()
	q.Set("expires", strconv.FormatInt(g.expires.Unix(), 10))
	q.Set("token", token)
	return s.base + g.path + "?" + q.Encode(), nil
}

// Seal implements store.Presigner as store/s3 does: a sealed key is checked
// and returned as it is; otherwise the incoming object becomes key's.
func (s *Store) Seal(_ context.Context, key string, size int64) (store.Info, error) {
	if !store.ValidKey(key) {
		return store.Info{}, store.ErrKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.objects
	o, ok := from[key]
	if !ok {
		from = s.incoming
		if o, ok = from[key]; !ok {
			return store.Info{}, store.ErrNotFound
		}
	}
	if o.info.Size != size {
		delete(from, key)
		return o.info, store.ErrSize
	}
	s.objects[key] = o
	delete(s.incoming, key)
	return o.info, nil
}

// PublicURL implements store.Presigner: base joined with key. The Store
// does not serve it.
func (s *Store) PublicURL(base, key string) (string, error) {
	if !store.ValidKey(key) {
		return "", store.ErrKey
	}
	return strings.TrimRight(base, "/") + "/" + key, nil
}

// ServeHTTP answers the presigned URLs: 403 to a URL the store did not
// hand out (or that was changed), an expired one, or a request of another
// method, length or type than it allows; 400 to a body that is not as long
// as its Content-Length; 404 to a GET of a missing object.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	g, ok := s.grants[q.Get("token")]
	now := s.now()
	s.mu.Unlock()
	switch {
	case !ok || r.URL.Path != g.path || r.Method != g.method || !g.query(q):
		http.Error(w, "signature does not match", http.StatusForbidden)
		return
	case !now.Before(g.expires):
		http.Error(w, "request has expired", http.StatusForbidden)
		return
	}
	switch g.method {
	case http.MethodPut:
		s.servePut(w, r, g)
	case http.MethodGet:
		o, err := s.object(g.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if g.contentType != "" {
			w.Header().Set("Content-Type", g.contentType)
		}
		if g.disposition != "" {
			w.Header().Set("Content-Disposition", g.disposition)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(o.data))
	}
}

// query reports whether q says what g allows, so that a changed query
// fails as a changed signature does.
func (g grant) query(q url.Values) bool {
	want := url.Values{"expires": {strconv.FormatInt(g.expires.Unix(), 10)}, "token": q["token"]}
	switch g.method {
	case http.MethodPut:
		want.Set("size", strconv.FormatInt(g.size, 10))
		if g.contentType != "" {
			want.Set("type", g.contentType)
		}
	case http.MethodGet:
		if g.contentType != "" {
			want.Set("response-content-type", g.contentType)
		}
		if g.disposition != "" {
			want.Set("response-content-disposition", g.disposition)
		}
	}
	return q.Encode() == want.Encode()
}

func (s *Store) servePut(w http.ResponseWriter, r *http.Request, g grant) {
	ctype := r.Header.Get("Content-Type")
	if g.signsContentLength && r.ContentLength != g.size || g.contentType != "" && ctype != g.contentType {
		http.Error(w, "signature does not match", http.StatusForbidden)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max(r.ContentLength, 0)))
	if err != nil || int64(len(data)) != r.ContentLength {
		http.Error(w, "body length differs from Content-Length", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.incoming[g.key] = object{data: data, info: store.Info{Size: int64(len(data)), ContentType: ctype}}
	s.mu.Unlock()
}
