package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// rawExchange sends req on a new connection from the loopback address
// from, and returns the status of the first final answer ("" if none) and
// whether the server closed the connection within wait.
func rawExchange(t *testing.T, addr, from, req string, wait time.Duration) (status string, closed bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	_, _ = io.WriteString(c, req)
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err == nil {
		status = resp.Status
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	_, err = io.Copy(io.Discard, br)
	return status, err == nil
}

// TestServeBoundsConnections runs serve and attacks its HTTP front as the
// hostile test did: every connection ends within the timeouts whatever it
// withholds (a header, a body after an early error, a body after an
// Expect that net/http refuses itself), and one address gets no more than
// http.max_connections_per_address connections; the next is answered 503,
// counted in the metrics, while other addresses still get in.
func TestServeBoundsConnections(t *testing.T) {
	oldHeader, oldRead := readHeaderTimeout, readTimeout
	readHeaderTimeout, readTimeout = time.Second, 500*time.Millisecond
	defer func() { readHeaderTimeout, readTimeout = oldHeader, oldRead }()
	dir := t.TempDir()
	ports := testserver.FreePorts(t, 3)
	addr, admin := ports[0], ports[1]
	cfg := filepath.Join(dir, "m.toml")
	conf := fmt.Sprintf(`[component]
jid = "upload.example.net"
server = %q
secret = "s"
[http]
listen = %q
public_url = "http://%s"
max_connections_per_address = 3
[admin]
listen = %q
`, ports[2], addr, addr, admin)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testserver.LogBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, &stderr, &stderr) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	waitServing(t, admin, &stderr)

	const unknown = "/upload/0123456789abcdef0123456789abcdef/x?e=1&t=x"
	for _, c := range []struct{ name, req, status string }{
		{"header withheld", "GET /file/0123456789abcdef0123456789abcdef/x HTTP/1.1\r\nHost: x\r\n", ""},
		{"body withheld after a 404", "PUT " + unknown + " HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "404 Not Found"},
		{"body withheld after 100-continue", "PUT " + unknown + " HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", "404 Not Found"},
		{"24 KiB of short headers", "GET /file/0123456789abcdef0123456789abcdef/x HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("a: b\r\n", 24<<10/6) + "\r\n", "431 Request Header Fields Too Large"},
		{"body withheld after a 417", "PUT " + unknown + " HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: x\r\n\r\n", "417 Expectation Failed"},
	} {
		if status, closed := rawExchange(t, addr, "127.0.0.5", c.req, 15*time.Second); status != c.status || !closed {
			t.Errorf("%s: answer %q, closed %v; want %q and closed", c.name, status, closed, c.status)
		}
	}

	// Three keep-alive connections from 127.0.0.1 stay open after their
	// answers; a fourth is refused, one from 127.0.0.2 is not.
	for range 3 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET /file/0123456789abcdef0123456789abcdef/x HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 404 {
			t.Fatalf("kept connection: %v %v", resp, err)
		}
	}
	get := "GET /file/0123456789abcdef0123456789abcdef/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if status, _ := rawExchange(t, addr, "127.0.0.1", get, 10*time.Second); status != "503 Service Unavailable" {
		t.Errorf("fourth connection from one address: %q, want 503", status)
	}
	if status, _ := rawExchange(t, addr, "127.0.0.2", get, 10*time.Second); status != "404 Not Found" {
		t.Errorf("another address: %q, want 404", status)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mediaslot_http_connections_refused_total{bound="per_address"} 1`, "mediaslot_http_accept_errors_total 0"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
