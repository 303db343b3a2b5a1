package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

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

type fakeLink struct {
	connected bool
	stalled   time.Duration
}

func (l fakeLink) Connected() bool        { return l.connected }
func (l fakeLink) Stalled() time.Duration { return l.stalled }

type fakeStore struct{ err error }

func (s fakeStore) StoreErr() error { return s.err }

type listenerState connlimit.Stats

func (l listenerState) Stats() connlimit.Stats { return connlimit.Stats(l) }

// A read loop stuck on one stanza makes mediaslot not ready: every slot
// request waits behind it, though the link is up.
func TestReadinessStalledLoop(t *testing.T) {
	for _, c := range []struct {
		link fakeLink
		want string
	}{
		{fakeLink{connected: true}, ""},
		{fakeLink{connected: true, stalled: stallNotReady / 2}, ""},
		{fakeLink{connected: true, stalled: stallNotReady + time.Second}, "component: read loop busy with one stanza for 6s; requests are waiting"},
		{fakeLink{}, "component: not connected to the XMPP server at xmpp:5347"},
	} {
		got := strings.Join(readiness(c.link, fakeStore{}, listenerState{}, "xmpp:5347", nil)(), "\n")
		if got != c.want {
			t.Errorf("%+v: %q, want %q", c.link, got, c.want)
		}
	}
}

// /readyz says not ready while the HTTP listener cannot accept (out of
// file descriptors), and ready again once an accept succeeded.
func TestReadinessAcceptFailing(t *testing.T) {
	up := fakeLink{connected: true}
	emfile := errors.New("accept tcp 127.0.0.1:5050: accept4: too many open files")
	if not := readiness(up, fakeStore{}, listenerState{AcceptFailing: emfile, AcceptErrors: 3}, "x", nil)(); !slices.Equal(not, []string{"http: accepting connections fails: " + emfile.Error()}) {
		t.Errorf("accept failing: %q", not)
	}
	if not := readiness(up, fakeStore{}, listenerState{AcceptErrors: 3}, "x", nil)(); len(not) != 0 {
		t.Errorf("accepting again: %q", not)
	}
}
