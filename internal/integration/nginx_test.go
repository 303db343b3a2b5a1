package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mediaslot/testserver"
)

// The nginx block of docs/OPERATIONS.md in front of mediaslot, with TLS: a
// real client gets https:// slot URLs, PUTs through nginx (201) and GETs,
// HEADs and Range-GETs the file back through it.
func TestNginxSnippet(t *testing.T) {
	nginx := testserver.RequireTool(t, "nginx")
	doc := string(mustRead(t, filepath.Join(testserver.ModuleRoot(t), "docs", "OPERATIONS.md")))
	block := markedBlock(t, doc, "nginx", "nginx")

	srv := testserver.Prosody(t)
	dir := t.TempDir()
	cert, key := writeIPCert(t, dir)
	proxy := freePort(t)
	cfg, addr := writeConfig(t, srv, "")
	cfg = edit(t, cfg, "public_url = \"http://"+addr+"\"", "public_url = \"https://"+proxy+"\"")

	// the doc's block, on this test's ports and certificate
	for _, r := range [][2]string{
		{"listen 443 ssl;", "listen " + proxy + " ssl;"},
		{"listen [::]:443 ssl;", ""},
		{"/etc/letsencrypt/live/upload.example.net/fullchain.pem", cert},
		{"/etc/letsencrypt/live/upload.example.net/privkey.pem", key},
		{"proxy_pass http://127.0.0.1:5050;", "proxy_pass http://" + addr + ";"},
	} {
		if !strings.Contains(block, r[0]) {
			t.Fatalf("the nginx block lacks %q", r[0])
		}
		block = strings.Replace(block, r[0], r[1], 1)
	}
	conf := filepath.Join(dir, "nginx.conf")
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s}
`, dir, block)
	if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-c", conf, "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, "-c", conf, "-p", dir)
	log := &testserver.LogBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testserver.Stop(cmd, syscall.SIGQUIT, 5*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx:\n%s%s", log.String(), tail(string(b), 30))
		}
	})
	testserver.WaitFor(t, 5*time.Second, "nginx listening", func() bool {
		c, err := net.Dial("tcp", proxy)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// --check-config finds the way from public_url through nginx to http.listen
	runCheckConfig(t, cfg).want(t, "public", "ok", "GET https://"+proxy+"/file/…/check reached http.listen "+addr)

	m := &mediaslot{t: t, log: &testserver.LogBuffer{}, Config: cfg, HTTP: "http://" + addr}
	m.cmd = exec.Command(binary, "serve", "--config", cfg)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	m.waitConnected(1)

	t.Setenv("SSL_CERT_FILE", cert) // the client trusts the test certificate, nothing else
	file, data := writeRandomFile(t, "through nginx.jpg", 3<<20)
	res := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
	if !strings.HasPrefix(res.PutURL, "https://"+proxy+"/upload/") || !strings.HasPrefix(res.GetURL, "https://"+proxy+"/file/") {
		t.Errorf("slot URLs not on the proxy: %s %s", res.PutURL, res.GetURL)
	}
	checkTransfer(t, res, data, 201)
}

// writeIPCert writes a self-signed certificate for 127.0.0.1.
func writeIPCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
