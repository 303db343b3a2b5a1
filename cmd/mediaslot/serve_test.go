package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// serve with built-in TLS answers HTTPS while the XMPP server is unreachable,
// and stops cleanly when its context ends.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	addr := testserver.FreePorts(t, 1)[0]
	cfg := filepath.Join(dir, "m.toml")
	conf := fmt.Sprintf(`[component]
jid = "upload.example.net"
server = %q
secret = "s"
[http]
listen = %q
public_url = "https://%s"
tls_cert = %q
tls_key = %q
[log]
level = "debug"
`, testserver.FreePorts(t, 1)[0], addr, addr, cert, key)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testserver.LogBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, &stderr, &stderr) }()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 2 * time.Second}
	var resp *http.Response
	testserver.WaitFor(t, 10*time.Second, "serve to answer HTTPS", func() bool {
		var err error
		resp, err = client.Get("https://" + addr + "/file/0123456789abcdef0123456789abcdef/x")
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.TLS == nil {
		t.Fatalf("HTTPS GET of unknown file: %s (tls %v)", resp.Status, resp.TLS != nil)
	}
	// the binary links net/http/pprof for the admin listener; the public one never serves it
	if resp, err := client.Get("https://" + addr + "/debug/pprof/"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("public listener, /debug/pprof/: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// HTTP/1.1 only: an HTTP/2 connection carries up to 250 requests at
	// once, each download with an open file, past the connection bounds
	// fitted to the open-file limit (two files per connection)
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("built-in TLS negotiated %q", p)
	}
	tc.Close()
	// a client that gives up during the handshake is noise: debug, not warn
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	handshake := func() string {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "http: TLS handshake error") {
				return l
			}
		}
		return ""
	}
	testserver.WaitFor(t, 10*time.Second, "the TLS handshake error in the log", func() bool { return handshake() != "" })
	if l := handshake(); !strings.Contains(l, "level=DEBUG") {
		t.Errorf("TLS handshake error logged as %q, want level=DEBUG\n%s", l, stderr.String())
	}
	// no XMPP server listens: the component keeps trying (its first attempt
	// may come after the HTTPS answer on a loaded machine)
	testserver.WaitFor(t, 10*time.Second, "the component's failed attempt in the log", func() bool {
		return strings.Contains(stderr.String(), "component link down")
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10 s")
	}
	if !strings.Contains(stderr.String(), "component link down") {
		t.Errorf("no sign of reconnection attempts:\n%s", stderr.String())
	}
}

func TestConfigErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "m.toml")
	_ = os.WriteFile(cfg, []byte("[upload]\nmax_file_size = -1\n"), 0o600)
	var out testserver.LogBuffer
	if code := run(context.Background(), []string{"serve", "--config", cfg}, &out, &out); code != 1 {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"component.secret", "max_file_size"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("error output lacks %q:\n%s", want, out.String())
		}
	}
	out = testserver.LogBuffer{}
	if code := run(context.Background(), []string{"nonsense"}, &out, &out); code != 2 || !strings.Contains(out.String(), "unknown command") {
		t.Errorf("unknown command: %d %s", code, out.String())
	}
	out = testserver.LogBuffer{}
	if code := run(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "mediaslot ") {
		t.Errorf("version: %d %s", code, out.String())
	}
}
