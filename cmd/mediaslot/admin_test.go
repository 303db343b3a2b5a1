package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAdminHandler(t *testing.T) {
	var not []string
	h := adminHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }),
		func() []string { return not })
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
