package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mediaslot/testserver"
)

// serveLimited runs `mediaslot serve` (this test binary standing in) with
// at most files open files and the [http] lines given, and returns the
// HTTP and admin addresses and its stderr.
func serveLimited(t *testing.T, files int, httpConf string) (addr, admin string, stderr *testserver.LogBuffer) {
	t.Helper()
	dir := t.TempDir()
	ports := testserver.FreePorts(t, 3)
	addr, admin = ports[0], ports[1]
	cfg := filepath.Join(dir, "m.toml")
	conf := fmt.Sprintf("[component]\njid = \"upload.example.net\"\nserver = %q\nsecret = \"s\"\n[http]\nlisten = %q\npublic_url = \"http://%s\"\n%s\n[admin]\nlisten = %q\n",
		ports[2], addr, addr, httpConf, admin)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, files), exe, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "MEDIASLOT_TEST_AS_MAIN=1")
	stderr = &testserver.LogBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	waitServing(t, admin, stderr)
	return addr, admin, stderr
}

// waitServing waits until serve's admin listener answers /healthz, and
// shows serve's log if the test fails.
func waitServing(t *testing.T, admin string, stderr *testserver.LogBuffer) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", stderr.String())
		}
	})
	testserver.WaitFor(t, 5*time.Second, "serve to answer /healthz", func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

// holdConnections opens n connections to addr from distinct loopback
// addresses, each sending a GET and reading nothing, and closes them at the
// end of the test.
func holdConnections(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%250))}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, "GET /file/0123456789abcdef0123456789abcdef/x HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
	}
	return conns
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// With few open files, http.max_connections is lowered to fit them
// ((128-64)/2 = 32): of 200 connections held at once, those past the bound
// are refused (a 503, or only closed while 32 refusals are being answered)
// instead of exhausting the file descriptors, and the admin listener still
// answers.
func TestServeFitsOpenFiles(t *testing.T) {
	addr, admin, stderr := serveLimited(t, 128, "")
	conns := holdConnections(t, addr, 200)
	admitted, answered503 := 0, 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 12)
		_, err := io.ReadFull(c, b)
		switch {
		case err == nil && string(b) == "HTTP/1.1 404":
			admitted++
		case err == nil && string(b) == "HTTP/1.1 503":
			answered503++
		case err == nil:
			t.Fatalf("answer %q", b)
		}
	}
	if admitted != 32 || answered503 == 0 {
		t.Errorf("%d of 200 connections admitted, %d answered 503; want 32 admitted", admitted, answered503)
	}
	if !strings.Contains(stderr.String(), "http.max_connections lowered to fit the limit on open files") {
		t.Errorf("no warning about the lowered bound:\n%s", stderr.String())
	}
	m := metricsText(t, admin)
	for _, want := range []string{"mediaslot_http_accept_errors_total 0", "mediaslot_http_accept_failing 0",
		`mediaslot_http_connections_refused_total{bound="total"} 168`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(m, "mediaslot_http"))
		}
	}
}

// With the bound off, held connections exhaust the open files: the accept
// errors are counted, and once the connections are gone mediaslot accepts
// again and /readyz no longer names the listener.
func TestServeCountsAcceptErrors(t *testing.T) {
	addr, admin, stderr := serveLimited(t, 96, "max_connections = 0\nmax_connections_per_address = 0")
	conns := holdConnections(t, addr, 150)
	testserver.WaitFor(t, 10*time.Second, "an accept error with 150 connections and 96 files", func() bool {
		return strings.Contains(stderr.String(), "too many open files")
	})
	for _, c := range conns {
		c.Close()
	}
	testserver.WaitFor(t, 10*time.Second, "accept errors counted and accepting again", func() bool {
		m := metricsText(t, admin)
		return strings.Contains(m, "mediaslot_http_accept_failing 0") && !strings.Contains(m, "mediaslot_http_accept_errors_total 0")
	})
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "http:") {
		t.Errorf("/readyz after recovery: %s", b)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
