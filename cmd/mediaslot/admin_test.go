package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"mediaslot/internal/connlimit"
)

func TestAdminHandler(t *testing.T) {
	var not []string
	h := adminHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }),
		func() []string { return not }, false)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, c := range []struct {
		not  []string
		path string
		code int
		body string
	}{
		{nil, "/healthz", 200, "ok\n"},
		{nil, "/readyz", 200, "ready\n"},
		{nil, "/metrics", 200, "metrics"},
		{[]string{"component: not connected", "store: bucket does not exist"}, "/readyz", 503,
			"not ready:\ncomponent: not connected\nstore: bucket does not exist\n"},
		{[]string{"component: not connected"}, "/healthz", 200, "ok\n"},
		{nil, "/", 404, "404 page not found\n"},
	} {
		not = c.not
		if code, body := get(c.path); code != c.code || body != c.body {
			t.Errorf("%s with %v: %d %q, want %d %q", c.path, c.not, code, body, c.code, c.body)
		}
	}
}

// The profiler is on the admin listener only when asked for.
func TestAdminHandlerPprof(t *testing.T) {
	ready := func() []string { return nil }
	metrics := http.NotFoundHandler()
	for _, c := range []struct {
		on   bool
		path string
		code int
		want string
	}{
		{true, "/debug/pprof/", 200, "goroutine"},
		{true, "/debug/pprof/heap?debug=1", 200, "heap profile"},
		{true, "/debug/pprof/cmdline", 200, ""},
		{false, "/debug/pprof/", 404, ""},
		{false, "/debug/pprof/heap", 404, ""},
	} {
		rec := httptest.NewRecorder()
		adminHandler(metrics, ready, c.on).ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("pprof %v, GET %s: %d, want %d with %q", c.on, c.path, rec.Code, c.code, c.want)
		}
	}
}

type linkState bool

func (l linkState) Connected() bool { return bool(l) }

type storeState struct{ err error }

func (s storeState) StoreErr() error { return s.err }

type listenerState connlimit.Stats

func (l listenerState) Stats() connlimit.Stats { return connlimit.Stats(l) }

// /readyz says not ready while the HTTP listener cannot accept (out of
// file descriptors), and ready again once an accept succeeded.
func TestReadinessAcceptFailing(t *testing.T) {
	emfile := errors.New("accept tcp 127.0.0.1:5050: accept4: too many open files")
	if not := readiness(linkState(true), storeState{}, listenerState{AcceptFailing: emfile, AcceptErrors: 3}, "x")(); !slices.Equal(not, []string{"http: accepting connections fails: " + emfile.Error()}) {
		t.Errorf("accept failing: %q", not)
	}
	if not := readiness(linkState(true), storeState{}, listenerState{AcceptErrors: 3}, "x")(); len(not) != 0 {
		t.Errorf("accepting again: %q", not)
	}
}
