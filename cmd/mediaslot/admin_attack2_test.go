package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAdminConnectionsEnd: a request to the admin listener that declares a
// body and never sends it, or never finishes its header, loses its
// connection within the admin timeouts (it was held for ever: net/http
// reads a declared body before answering, with no deadline).
func TestAdminConnectionsEnd(t *testing.T) {
	oldHeader, oldRead := adminReadHeaderTimeout, adminReadTimeout
	adminReadHeaderTimeout, adminReadTimeout = 300*time.Millisecond, 300*time.Millisecond
	defer func() { adminReadHeaderTimeout, adminReadTimeout = oldHeader, oldRead }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := adminServer(adminHandler(http.NotFoundHandler(), func() []string { return nil }, false), slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	for _, c := range []struct{ name, req string }{
		{"body withheld", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"},
		{"chunked body withheld", "GET /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"},
		{"header withheld", "GET /healthz HTTP/1.1\r\nHost: x\r\n"},
	} {
		if _, closed := rawExchange(t, ln.Addr().String(), "127.0.0.1", c.req, 5*time.Second); !closed {
			t.Errorf("%s: connection still open after 5 s", c.name)
		}
	}
}
