// Package testserver is mediaslot's test harness: it starts private
// servers for tests, in the style of mellium's internal/integration
// harness: Prosody (Prosody), ejabberd (Ejabberd) and S3 servers (versitygw,
// MinIO, rclone, SeaweedFS: EachS3). It is test code, outside the runtime packages:
// only _test.go files import it, and no mediaslot binary links it
// (TestHarnessOnlyInTests checks both).
//
// The server runs from testdata/prosody/prosody.cfg.lua (the same
// env-parameterised config the demo stack uses; its attach snippet, the
// README's, gets the domain and secret put in) in a t.TempDir(), listens on
// free 127.0.0.1 ports only, has the users alice, bob and carol (password =
// user name), an external-component slot "upload.<domain>" (XEP-0114, with
// mod_privilege) and Prosody's own http_file_share at "share.<domain>".
//
// When the prosody binary (or a client tool, see RequireTool) is missing, the
// test is skipped, unless CI=true or MEDIASLOT_REQUIRE_INTEGRATION=1, in which
// case it fails.
package testserver

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Users are the accounts every server has; each password equals the user name.
var Users = []string{"alice", "bob", "carol", "dave"}

const (
	startTimeout = 45 * time.Second // until c2s, component and http ports accept; generous, for a loaded CI machine
	stopTimeout  = 10 * time.Second // SIGTERM grace period before SIGKILL
	logTailLines = 60
)

// Server is a running (or stopped) private Prosody.
type Server struct {
	Domain string // XMPP domain of the VirtualHost ("localhost")
	Dir    string // XMPP_TEST_DIR: data/, certs/, prosody.log, stdout.log, prosody.pid
	Config string // path of the config file copy inside Dir
	Secret string // component secret of ComponentJID()

	C2S       string // "127.0.0.1:port" of the client listener
	Component string // "127.0.0.1:port" of the XEP-0114 component listener
	HTTP      string // "127.0.0.1:port" of Prosody's own HTTP server (share.<domain>)

	t    testing.TB
	mu   sync.Mutex
	proc *process // nil while stopped
}

// IntegrationRequired reports whether missing servers/tools must fail tests
// instead of skipping them (CI=true or MEDIASLOT_REQUIRE_INTEGRATION=1).
func IntegrationRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv("MEDIASLOT_REQUIRE_INTEGRATION") == "1"
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if IntegrationRequired() {
		t.Fatalf(format+" (required: CI=true or MEDIASLOT_REQUIRE_INTEGRATION=1)", args...)
	}
	t.Skipf(format, args...)
}

// RequireTool returns the path of the executable name (looked up in PATH
// unless it contains a slash). If it is missing, the test fails under
// CI=true / MEDIASLOT_REQUIRE_INTEGRATION=1 and is skipped otherwise.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "testserver: %s not available: %v", name, err)
	}
	return p
}

// RequirePython returns "/usr/bin/python3" after checking that it can import
// all the given modules (e.g. "slixmpp", "aiohttp"; Debian's python3-*
// packages only import under /usr/bin/python3). Missing interpreter or
// modules skip the test, or fail it when integration tests are required.
func RequirePython(t testing.TB, modules ...string) string {
	t.Helper()
	py := RequireTool(t, "/usr/bin/python3")
	if len(modules) == 0 {
		return py
	}
	out, err := exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err != nil {
		skipOrFail(t, "testserver: %s cannot import %s: %v\n%s", py, strings.Join(modules, ", "), err, out)
	}
	return py
}

// ModuleRoot returns the directory holding the module's go.mod. It uses the
// location of this source file and falls back to searching upwards from the
// working directory (go test runs in the package directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && bytes.Contains(b, []byte("module mediaslot"))
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if isRoot(dir) {
			return dir
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testserver: getwd: %v", err)
	}
	for dir := wd; ; {
		if isRoot(dir) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatalf("testserver: cannot locate the mediaslot module root from %s", wd)
	return ""
}

// Testdata returns the absolute path of testdata/<elem...> in the module
// root, e.g. Testdata(t, "clients", "slix_upload.py"). It fails the test if
// the path does not exist.
func Testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{ModuleRoot(t), "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	return p
}

// Prosody starts a private Prosody for the test and stops it in t.Cleanup.
// If the test failed, the tail of prosody.log and stdout.log is logged.
func Prosody(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("prosody"); err != nil {
		skipOrFail(t, "testserver: prosody not on PATH: %v", err)
	}
	if _, err := exec.LookPath("prosodyctl"); err != nil {
		skipOrFail(t, "testserver: prosodyctl not on PATH: %v", err)
	}

	dir := t.TempDir()
	s := &Server{
		Domain: "localhost",
		Dir:    dir,
		Config: filepath.Join(dir, "prosody.cfg.lua"),
		Secret: randomHex(t, 16),
		t:      t,
	}
	ports := FreePorts(t, 3)
	s.C2S, s.Component, s.HTTP = ports[0], ports[1], ports[2]

	for _, d := range []string{"data", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	cfg, err := os.ReadFile(Testdata(t, "prosody", "prosody.cfg.lua"))
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if err := os.WriteFile(s.Config, renderProsodyConfig(cfg, s.Domain, s.Secret), 0o600); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	writeCert(t, filepath.Join(dir, "certs"), s.Domain)

	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.logTails()
		}
	})

	// prosodyctl writes data/<domain>/accounts/<user>.dat; one process per user,
	// in parallel (≈0.2 s each).
	var wg sync.WaitGroup
	errs := make([]error, len(Users))
	for i, u := range Users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.prosodyctl("register", u, s.Domain, u)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testserver: registering users: %v", err)
	}

	s.Start()
	return s
}

// The attach snippet in testdata/prosody/prosody.cfg.lua is the README's,
// written for example.net with a placeholder for the secret, so that it can
// be pasted into any prosody.cfg.lua.
const (
	snippetDomain = "example.net"
	snippetSecret = "PASTE-THE-SECRET-HERE"
)

// renderProsodyConfig puts the server's domain and component secret into
// the attach snippet of the test config (scripts/demo.sh does the same with
// sed).
func renderProsodyConfig(cfg []byte, domain, secret string) []byte {
	cfg = bytes.ReplaceAll(cfg, []byte(snippetDomain), []byte(domain))
	return bytes.ReplaceAll(cfg, []byte(snippetSecret), []byte(secret))
}

// ComponentJID is the JID of the external component slot ("upload."+Domain).
func (s *Server) ComponentJID() string { return "upload." + s.Domain }

// ShareJID is the JID of Prosody's own XEP-0363 service ("share."+Domain;
// hidden from disco#items).
func (s *Server) ShareJID() string { return "share." + s.Domain }

// JID returns user@Domain.
func (s *Server) JID(user string) string { return user + "@" + s.Domain }

// Env returns the XMPP_* environment entries ("KEY=value") that parameterise
// the config file.
func (s *Server) Env() []string {
	return []string{
		"XMPP_TEST_DIR=" + s.Dir,
		"XMPP_DOMAIN=" + s.Domain,
		"XMPP_C2S_PORT=" + port(s.C2S),
		"XMPP_COMPONENT_PORT=" + port(s.Component),
		"XMPP_HTTP_PORT=" + port(s.HTTP),
	}
}

func (s *Server) env() []string {
	env := make([]string, 0, len(os.Environ())+5)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "XMPP_") { // don't let the caller's XMPP_HIDE_* etc. leak in
			env = append(env, e)
		}
	}
	return append(env, s.Env()...)
}

func (s *Server) prosodyctl(args ...string) error {
	cmd := exec.Command("prosodyctl", append([]string{"--config", s.Config}, args...)...)
	cmd.Env = s.env()
	cmd.Dir = s.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("prosodyctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts Prosody (again) with the same dir, ports, secret and users and
// waits until the c2s, component and http ports accept connections. It fails
// the test if Prosody is already running or does not come up.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.t.Fatalf("testserver: Start: prosody already running (pid %d)", s.proc.pid())
	}
	// prosody.log is appended to across restarts; remember where this run starts.
	logOffset := fileSize(filepath.Join(s.Dir, "prosody.log"))

	cmd := exec.Command("prosody", "--config", s.Config, "-F")
	cmd.Env = s.env()
	cmd.Dir = s.Dir
	p, err := startProcess(cmd, filepath.Join(s.Dir, "stdout.log"))
	if err != nil {
		s.t.Fatalf("testserver: starting prosody: %v", err)
	}
	s.proc = p

	err = p.waitListening("prosody", time.Now().Add(startTimeout), startTimeout, s.C2S, s.Component, s.HTTP)
	// A port taken by someone else between freePorts and now would make the
	// dial above succeed against the wrong process; Prosody logs it.
	if err == nil && strings.Contains(readFrom(filepath.Join(s.Dir, "prosody.log"), logOffset), "Failed to open server port") {
		err = errors.New("prosody could not bind all its ports (see log above)")
	}
	if err != nil {
		s.stopLocked()
		s.logTails()
		s.t.Fatalf("testserver: %v", err)
	}
}

// Stop stops Prosody: SIGTERM, up to 10 s grace, then SIGKILL. It is a no-op
// if Prosody is not running. Data, users and logs stay in Dir.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	s.proc.stop(s.t, "prosody", stopTimeout)
	s.proc = nil
}

// Restart stops and starts Prosody again (same ports, dir and users).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// PID returns the process id of the running Prosody, or 0.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.pid()
}

// LogTail returns the last n lines of Dir/name (e.g. "prosody.log", the debug
// log with every stanza, or "stdout.log").
func (s *Server) LogTail(name string, n int) string {
	return tail(filepath.Join(s.Dir, name), n)
}

func (s *Server) logTails() {
	logTails(s.t, filepath.Join(s.Dir, "stdout.log"), filepath.Join(s.Dir, "prosody.log"))
}

// logTails logs the last logTailLines lines of each of the files.
func logTails(t testing.TB, paths ...string) {
	for _, p := range paths {
		t.Logf("testserver: last %d lines of %s:\n%s", logTailLines, p, tail(p, logTailLines))
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	// Only look at the last 256 KiB: the debug log can be large.
	const maxTail = 256 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		_, _ = f.Seek(st.Size()-maxTail, io.SeekStart)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	return string(b)
}

// FreePorts picks n distinct loopback addresses whose ports are free now.
// They are chosen at random just below the kernel's ephemeral port range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768 and up by default):
// ports in that range are what outgoing connections and ":0" listeners
// get, so a port picked there and closed again until the program under
// test binds it can be taken meanwhile by any connection of a test running
// beside, as a demo's admin port once was in CI. Below the range only
// another explicit pick can collide. That is still possible, so Start
// detects a lost race and retries.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	lo, hi := portRange()
	addrs := make([]string, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for tries := 0; len(addrs) < n; tries++ {
		if tries == 10_000 {
			t.Fatalf("testserver: no free port in %d-%d", lo, hi-1)
		}
		port := 0 // the kernel's choice, when the ephemeral range leaves no room
		if hi > lo {
			port = lo + mrand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken
		}
		ls = append(ls, l) // held until all are picked, so they differ
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// portRange is where FreePorts picks: the 10,000 ports below the ephemeral
// range, or those above it when it starts too low for that; empty when it
// spans nearly all ports.
func portRange() (lo, hi int) {
	first, last := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				first, last = a, z
			}
		}
	}
	if first-10_000 >= 1024 {
		return first - 10_000, first
	}
	return last + 1, min(last+10_001, 65536)
}

func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	return hex.EncodeToString(b)
}

// writeCert writes a self-signed ECDSA P-256 certificate for domain and
// *.domain to dir/<domain>.crt and dir/<domain>.key (PKCS#8), which is what
// the config's ssl = { ... } points at. LuaSec/OpenSSL accepts it.
func writeCert(t testing.TB, dir, domain string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"mediaslot test"}},
		DNSNames:              []string{domain, "*." + domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	write := func(name string, typ string, b []byte, mode os.FileMode) {
		data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	write(domain+".crt", "CERTIFICATE", der, 0o644)
	write(domain+".key", "PRIVATE KEY", keyDER, 0o600)
}
