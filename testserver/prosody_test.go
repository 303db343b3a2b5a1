package testserver

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const ioTimeout = 5 * time.Second

// readUntil reads from c until the accumulated data contains every one of
// want, or the deadline passes.
func readUntil(c net.Conn, want ...string) (string, error) {
	if err := c.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	b := make([]byte, 4096)
	for {
		done := true
		for _, w := range want {
			if !strings.Contains(buf.String(), w) {
				done = false
				break
			}
		}
		if done {
			return buf.String(), nil
		}
		n, err := c.Read(b)
		buf.Write(b[:n])
		if err != nil {
			return buf.String(), fmt.Errorf("waiting for %q: %w", want, err)
		}
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func clientHeader(domain string) string {
	return "<?xml version='1.0'?><stream:stream to='" + domain +
		"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
}

// checkC2S: stream features with STARTTLS, STARTTLS with our generated
// certificate, SASL PLAIN as alice.
func checkC2S(t *testing.T, s *Server) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.C2S, ioTimeout)
	if err != nil {
		t.Fatalf("dial c2s: %v", err)
	}
	defer c.Close()

	write(t, c, clientHeader(s.Domain))
	got, err := readUntil(c, "</stream:features>")
	if err != nil {
		t.Fatalf("c2s: %v; got %q", err, got)
	}
	if !strings.Contains(got, "urn:ietf:params:xml:ns:xmpp-tls") {
		t.Fatalf("c2s: STARTTLS not offered: %q", got)
	}

	write(t, c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if got, err := readUntil(c, "<proceed"); err != nil {
		t.Fatalf("starttls: %v; got %q", err, got)
	}
	tc := tls.Client(c, &tls.Config{ServerName: s.Domain, InsecureSkipVerify: true})
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(s.Dir, "certs", s.Domain+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if peer := tc.ConnectionState().PeerCertificates; len(peer) == 0 || blk == nil || !bytes.Equal(peer[0].Raw, blk.Bytes) {
		t.Fatalf("TLS: server did not present the generated certificate")
	}

	write(t, tc, clientHeader(s.Domain))
	got, err = readUntil(tc, "</stream:features>")
	if err != nil || !strings.Contains(got, "<mechanism>PLAIN</mechanism>") {
		t.Fatalf("c2s after TLS: err=%v, no PLAIN in %q", err, got)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alice"))
	write(t, tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+creds+"</auth>")
	got, err = readUntil(tc, ">")
	if err == nil && !strings.Contains(got, "<success") {
		got, err = readUntil(tc, "<success") // not yet complete
	}
	if err != nil {
		t.Fatalf("SASL PLAIN as alice: %v; got %q", err, got)
	}
	write(t, tc, "</stream:stream>")
}

var streamID = regexp.MustCompile(`<stream:stream[^>]*\sid=['"]([^'"]+)['"]`)

// componentHandshake does the XEP-0114 handshake as jid with secret on
// addr and returns the connection (closed in t.Cleanup) and what arrived up
// to and including the XEP-0356 advertisement in privilegeNS.
func componentHandshake(t *testing.T, addr, jid, secret, privilegeNS string) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial component: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	write(t, c, "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='"+jid+"'>")
	got, err := readUntil(c, "id=", ">")
	m := streamID.FindStringSubmatch(got)
	for err == nil && m == nil { // header not complete yet
		var more string
		more, err = readUntil(c, ">")
		got += more
		m = streamID.FindStringSubmatch(got)
	}
	if err != nil {
		t.Fatalf("component stream header: %v; got %q", err, got)
	}
	sum := sha1.Sum([]byte(m[1] + secret))
	write(t, c, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>")
	got, err = readUntil(c, "<handshake/>", privilegeNS, "</message>")
	if err != nil {
		t.Fatalf("component handshake/privilege: %v; got %q", err, got)
	}
	return c, got
}

// checkPrivileges checks that the XEP-0356 advertisement got grants what
// mediaslot needs (attribute quotes may be ' or ").
func checkPrivileges(t *testing.T, got string) {
	t.Helper()
	for _, perm := range []string{"access='message'", "type='outgoing'", "access='presence'", "type='managed_entity'"} {
		if !strings.Contains(strings.ReplaceAll(got, `"`, "'"), perm) {
			t.Errorf("privilege advertisement lacks %s: %q", perm, got)
		}
	}
}

// checkComponent: XEP-0114 handshake as ComponentJID() with Secret, then the
// XEP-0356 privilege advertisement from mod_privilege.
func checkComponent(t *testing.T, s *Server) {
	t.Helper()
	c, got := componentHandshake(t, s.Component, s.ComponentJID(), s.Secret, "urn:xmpp:privilege:2")
	defer c.Close()
	checkPrivileges(t, got)
	write(t, c, "</stream:stream>")
}

// checkNotFound checks that GET url (what: the kind of URL) answers 404.
func checkNotFound(t *testing.T, url, what string) {
	t.Helper()
	cl := &http.Client{Timeout: ioTimeout}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("http: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown %s: status %d, want 404", what, resp.StatusCode)
	}
}

// checkRestart restarts s and checks that another process runs.
func checkRestart(t *testing.T, s interface {
	Restart()
	PID() int
}) {
	t.Helper()
	pid := s.PID()
	start := time.Now()
	s.Restart()
	t.Logf("restart took %v", time.Since(start))
	if s.PID() == 0 || s.PID() == pid {
		t.Fatalf("Restart: pid %d -> %d", pid, s.PID())
	}
}

// checkStop stops s and checks that its c2s port no longer accepts and that
// a second Stop is a no-op.
func checkStop(t *testing.T, s XMPP) {
	t.Helper()
	start := time.Now()
	s.Stop()
	t.Logf("stop took %v", time.Since(start))
	if c, err := net.DialTimeout("tcp", s.C2SAddr(), time.Second); err == nil {
		c.Close()
		t.Errorf("c2s port still accepts after Stop")
	}
	s.Stop() // idempotent
}

func TestProsody(t *testing.T) {
	start := time.Now()
	s := Prosody(t)
	t.Logf("prosody up after %v: pid %d c2s=%s component=%s http=%s dir=%s",
		time.Since(start), s.PID(), s.C2S, s.Component, s.HTTP, s.Dir)

	for _, e := range s.Env() {
		if !strings.HasPrefix(e, "XMPP_") || !strings.Contains(e, "=") {
			t.Errorf("Env(): bad entry %q", e)
		}
	}
	if s.ComponentJID() != "upload.localhost" {
		t.Errorf("ComponentJID() = %q", s.ComponentJID())
	}

	checkC2S(t, s)
	checkComponent(t, s)
	checkNotFound(t, "http://"+s.HTTP+"/file_share/nonexistent/x.txt", "file_share slot")

	checkRestart(t, s)
	checkC2S(t, s) // users survive the restart
	checkComponent(t, s)

	checkStop(t, s)
}

// slixResult is the JSON printed by testdata/clients/slix_upload.py.
type slixResult struct {
	Features          []string          `json:"features"`
	Identities        [][]*string       `json:"identities"`
	Forms             []slixForm        `json:"forms"`
	ListedInItems     bool              `json:"listed_in_items"`
	PutURL            string            `json:"put_url"`
	GetURL            string            `json:"get_url"`
	PutHeaders        map[string]string `json:"put_headers"`
	PutStatus         int               `json:"put_status"`
	GetStatus         int               `json:"get_status"`
	GetSHA256         string            `json:"get_sha256"`
	HeadStatus        int               `json:"head_status"`
	HeadContentLength json.Number       `json:"head_content_length"`
	HeadContentType   string            `json:"head_content_type"`
	RangeStatus       int               `json:"range_status"`
	RangeContentRange string            `json:"range_content_range"`
	RangeSHA256       string            `json:"range_sha256"`
	RangeStart        int               `json:"range_start"`
	Error             *string           `json:"error"`
}

type slixForm struct {
	Type   string         `json:"type"`
	Values map[string]any `json:"values"`
}

// TestSlixAgainstProsodyShare runs the real-client script against Prosody's
// own XEP-0363 service (share.<domain>, mod_http_file_share).
func TestSlixAgainstProsodyShare(t *testing.T) {
	py := RequirePython(t, "slixmpp", "aiohttp")
	script := Testdata(t, "clients", "slix_upload.py")
	s := Prosody(t)

	// Odd size so that the range start (size/2) is not block aligned.
	data := make([]byte, 200*1024+7)
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = r.Read(data)
	file := filepath.Join(t.TempDir(), "slix sample.txt") // space: URL escaping
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host, port, _ := net.SplitHostPort(s.C2S)
	cmd := exec.CommandContext(ctx, py, script, s.JID("alice"), "alice", host, port, s.ShareJID(), file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("slix_upload.py took %v", time.Since(start))
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 0 {
			t.Fatalf("slix_upload.py: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
	}
	var res slixResult
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("parsing slix_upload.py output: %v\nstderr: %s", err, stderr.String())
	}
	if res.Error != nil {
		t.Errorf("error: %s", *res.Error)
	}

	if !slices.Contains(res.Features, "urn:xmpp:http:upload:0") {
		t.Errorf("features %q lack urn:xmpp:http:upload:0", res.Features)
	}
	hasStore := false
	for _, id := range res.Identities {
		if len(id) == 3 && id[0] != nil && id[1] != nil && *id[0] == "store" && *id[1] == "file" {
			hasStore = true
		}
	}
	if !hasStore {
		t.Errorf("no store/file identity in %v", res.Identities)
	}
	hasForm := false
	for _, f := range res.Forms {
		if fmt.Sprint(f.Values["FORM_TYPE"]) == "urn:xmpp:http:upload:0" ||
			fmt.Sprint(f.Values["FORM_TYPE"]) == "[urn:xmpp:http:upload:0]" {
			hasForm = true
			if got := fmt.Sprint(f.Values["max-file-size"]); got != "104857600" {
				t.Errorf("max-file-size = %q, want 104857600", got)
			}
		}
	}
	if !hasForm {
		t.Errorf("no urn:xmpp:http:upload:0 form in %+v", res.Forms)
	}
	if res.ListedInItems {
		t.Errorf("share.%s is listed in disco#items despite disco_hidden", s.Domain)
	}
	if want := "http://" + s.HTTP + "/file_share/"; !strings.HasPrefix(res.PutURL, want) || !strings.HasPrefix(res.GetURL, want) {
		t.Errorf("slot URLs %q / %q, want prefix %q", res.PutURL, res.GetURL, want)
	}
	if !strings.HasPrefix(res.PutHeaders["Authorization"], "Bearer ") {
		t.Errorf("put headers %v lack Authorization: Bearer", res.PutHeaders)
	}

	sum := sha256.Sum256(data)
	if res.PutStatus != http.StatusCreated {
		t.Errorf("PUT status %d, want 201", res.PutStatus)
	}
	if res.GetStatus != http.StatusOK || res.GetSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("GET status %d sha256 %s, want 200 %x", res.GetStatus, res.GetSHA256, sum)
	}
	if res.HeadStatus != http.StatusOK || res.HeadContentLength.String() != fmt.Sprint(len(data)) {
		t.Errorf("HEAD status %d content-length %q, want 200 %d", res.HeadStatus, res.HeadContentLength, len(data))
	}
	if !strings.HasPrefix(res.HeadContentType, "text/plain") {
		t.Errorf("HEAD content-type %q, want text/plain", res.HeadContentType)
	}

	n := len(data) / 2
	if res.RangeStart != n {
		t.Errorf("range_start %d, want %d", res.RangeStart, n)
	}
	rsum := sha256.Sum256(data[n:])
	if res.RangeStatus != http.StatusPartialContent || res.RangeSHA256 != hex.EncodeToString(rsum[:]) {
		t.Errorf("range GET status %d sha256 %s, want 206 %x", res.RangeStatus, res.RangeSHA256, rsum)
	}
	rfc := fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data))
	// Prosody 0.12.3's mod_http_file_share sends "bytes N-<size>/<size>"
	// (last-byte-pos off by one, RFC 9110 wants size-1). Accept that quirk
	// here; mediaslot's own tests must insist on the RFC form.
	prosodyQuirk := fmt.Sprintf("bytes %d-%d/%d", n, len(data), len(data))
	switch res.RangeContentRange {
	case rfc:
	case prosodyQuirk:
		t.Logf("Content-Range %q: Prosody's off-by-one last-byte-pos (RFC form: %q)", prosodyQuirk, rfc)
	default:
		t.Errorf("Content-Range %q, want %q", res.RangeContentRange, rfc)
	}
	if t.Failed() {
		t.Logf("slix_upload.py stderr:\n%s", stderr.String())
	}
}
