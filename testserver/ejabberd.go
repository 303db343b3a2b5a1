package testserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// XMPP is what integration tests need of a private XMPP server, whichever
// it is: *Server (Prosody) and *EjabberdServer satisfy it.
type XMPP interface {
	Name() string            // "prosody" or "ejabberd"
	JID(user string) string  // user@domain
	ComponentJID() string    // upload.<domain>, the slot mediaslot connects as
	C2SAddr() string         // "127.0.0.1:port" of the client listener
	ComponentAddr() string   // "127.0.0.1:port" of the XEP-0114 listener
	ComponentSecret() string // secret of ComponentJID()
	Start()                  // (re)start with the same ports, users and data
	Stop()                   // stop; a no-op if stopped
	Restart()
}

var (
	_ XMPP = (*Server)(nil)
	_ XMPP = (*EjabberdServer)(nil)
)

// Name implements XMPP.
func (s *Server) Name() string { return "prosody" }

// C2SAddr implements XMPP.
func (s *Server) C2SAddr() string { return s.C2S }

// ComponentAddr implements XMPP.
func (s *Server) ComponentAddr() string { return s.Component }

// ComponentSecret implements XMPP.
func (s *Server) ComponentSecret() string { return s.Secret }

const (
	ejabberdStart = 60 * time.Second // until "is started" and all ports accept; generous, for a loaded CI machine
	ejabberdStop  = 10 * time.Second // SIGTERM grace period before SIGKILL
)

// EjabberdServer is a running (or stopped) private ejabberd.
//
// It runs the Erlang VM directly rather than through ejabberdctl: ejabberdctl
// run as root re-executes itself as the ejabberd user, and every ejabberdctl
// command boots a VM (1-2 s). Without a node name the VM starts no Erlang
// distribution at all, hence no epmd and no distribution port; users are
// registered through mod_http_api on the loopback HTTP port instead.
type EjabberdServer struct {
	Domain string // the vhost ("localhost")
	Dir    string // certs/, spool/ (mnesia), log/ejabberd.log, upload/, stdout.log
	Config string // the rendered ejabberd.yml inside Dir
	Secret string // component secret of ComponentJID()

	C2S       string // "127.0.0.1:port" of ejabberd_c2s (STARTTLS offered)
	Component string // "127.0.0.1:port" of ejabberd_service (XEP-0114)
	HTTP      string // "127.0.0.1:port" of ejabberd_http (mod_http_upload at /upload, mod_http_api at /api)

	erl     string
	erlLibs string
	t       testing.TB
	mu      sync.Mutex
	proc    *process // nil while stopped
}

// Ejabberd starts a private ejabberd (Debian's 23.01 package) for the test
// and stops it in t.Cleanup; like Prosody it has the users of Users
// (password = user name), the component slot upload.<domain> with a random
// secret and XEP-0356 (presence managed_entity, message outgoing), and
// ejabberd's own XEP-0363 service share.<domain>. The config is rendered
// from testdata/ejabberd/ejabberd.yml.in. Starting takes about 1 s,
// stopping about 2 s: share one server between subtests.
func Ejabberd(t testing.TB) *EjabberdServer {
	t.Helper()
	return startEjabberd(t, 0)
}

// EjabberdBalanced is Ejabberd for n mediaslot instances connected as
// the one component: with testdata/ejabberd/balancing.yml.in appended, as
// make demo-cluster has it (domain_balancing by bare source JID, n slots).
func EjabberdBalanced(t testing.TB, n int) *EjabberdServer {
	t.Helper()
	return startEjabberd(t, n)
}

// startEjabberd starts Ejabberd, balanced over n slots if n > 0.
func startEjabberd(t testing.TB, n int) *EjabberdServer {
	t.Helper()
	erl, libs := ejabberdRuntime(t)
	dir := t.TempDir()
	s := &EjabberdServer{
		Domain:  "localhost",
		Dir:     dir,
		Config:  filepath.Join(dir, "ejabberd.yml"),
		Secret:  randomHex(t, 16),
		erl:     erl,
		erlLibs: libs,
		t:       t,
	}
	ports := FreePorts(t, 3)
	s.C2S, s.Component, s.HTTP = ports[0], ports[1], ports[2]
	for _, d := range []string{"certs", "spool", "log", "upload"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	writeCert(t, filepath.Join(dir, "certs"), s.Domain)
	tmpl, err := os.ReadFile(Testdata(t, "ejabberd", "ejabberd.yml.in"))
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if n > 0 {
		b, err := os.ReadFile(Testdata(t, "ejabberd", "balancing.yml.in"))
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		tmpl = append(tmpl, b...)
	}
	cfg := RenderEjabberdConfig(string(tmpl), map[string]string{
		"DIR": dir, "DOMAIN": s.Domain, "SECRET": s.Secret,
		"C2S": port(s.C2S), "COMP": port(s.Component), "HTTP": port(s.HTTP), "N": strconv.Itoa(n),
	})
	if err := os.WriteFile(s.Config, []byte(cfg), 0o644); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	// Name lookups stay in /etc/hosts and the resolver library: the VM
	// otherwise tries its own DNS client for "localhost".
	if err := os.WriteFile(filepath.Join(dir, "inetrc"), []byte("{lookup,[file,native]}.\n"), 0o644); err != nil {
		t.Fatalf("testserver: %v", err)
	}

	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.logTails()
		}
	})
	s.Start()
	for _, u := range Users {
		if err := s.register(u, u); err != nil {
			t.Fatalf("testserver: %v", err)
		}
	}
	return s
}

// RenderEjabberdConfig replaces every @KEY@ of tmpl by vars[KEY].
func RenderEjabberdConfig(tmpl string, vars map[string]string) string {
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "@"+k+"@", v)
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

var (
	erlLine     = regexp.MustCompile(`(?m)^\s*ERL="?([^"\s]+)"?\s*$`)
	erlLibsLine = regexp.MustCompile(`(?m)^\s*ERL_LIBS='?"?([^'"\s]+)`)
)

// ejabberdRuntime finds the Erlang runtime and the library directory the
// installed ejabberdctl uses (Debian: /usr/bin/erl, /usr/lib/<triplet>).
func ejabberdRuntime(t testing.TB) (erl, libs string) {
	t.Helper()
	ctl, err := exec.LookPath("ejabberdctl")
	if err != nil {
		ctl = "/usr/sbin/ejabberdctl" // not on a non-root PATH
		if !isExecutable(ctl) {
			skipOrFail(t, "testserver: ejabberd is not installed (no ejabberdctl): %v", err)
		}
	}
	script, err := os.ReadFile(ctl)
	if err != nil {
		skipOrFail(t, "testserver: reading %s: %v", ctl, err)
	}
	erl = "erl"
	if m := erlLine.FindSubmatch(script); m != nil {
		erl = string(m[1])
	}
	if erl, err = exec.LookPath(erl); err != nil {
		skipOrFail(t, "testserver: the Erlang runtime of ejabberd is missing: %v", err)
	}
	if m := erlLibsLine.FindSubmatch(script); m != nil {
		libs = string(m[1])
	}
	if apps, _ := filepath.Glob(filepath.Join(libs, "ejabberd-*", "ebin", "ejabberd.app")); libs == "" || len(apps) == 0 {
		skipOrFail(t, "testserver: no ejabberd application under ERL_LIBS=%q (from %s)", libs, ctl)
	}
	return erl, libs
}

// Name implements XMPP.
func (s *EjabberdServer) Name() string { return "ejabberd" }

// JID returns user@Domain.
func (s *EjabberdServer) JID(user string) string { return user + "@" + s.Domain }

// ComponentJID is the JID of the external component slot ("upload."+Domain).
func (s *EjabberdServer) ComponentJID() string { return "upload." + s.Domain }

// ShareJID is the JID of ejabberd's own mod_http_upload ("share."+Domain).
// Unlike Prosody's, ejabberd lists it in the host's disco#items.
func (s *EjabberdServer) ShareJID() string { return "share." + s.Domain }

// C2SAddr implements XMPP.
func (s *EjabberdServer) C2SAddr() string { return s.C2S }

// ComponentAddr implements XMPP.
func (s *EjabberdServer) ComponentAddr() string { return s.Component }

// ComponentSecret implements XMPP.
func (s *EjabberdServer) ComponentSecret() string { return s.Secret }

// LogPath is ejabberd's own log (connections, privileges granted, errors).
func (s *EjabberdServer) LogPath() string { return filepath.Join(s.Dir, "log", "ejabberd.log") }

func (s *EjabberdServer) env() []string {
	var env []string
	for _, e := range os.Environ() {
		switch k, _, _ := strings.Cut(e, "="); {
		case strings.HasPrefix(k, "ERL_"), strings.HasPrefix(k, "EJABBERD_"), k == "HOME", k == "CONTRIB_MODULES_PATH":
		default:
			env = append(env, e)
		}
	}
	return append(env,
		"HOME="+s.Dir, // no ~/.erlang of the caller's
		"EJABBERD_CONFIG_PATH="+s.Config,
		"EJABBERD_LOG_PATH="+s.LogPath(),
		"ERL_LIBS="+s.erlLibs,
		"ERL_INETRC="+filepath.Join(s.Dir, "inetrc"),
		"ERL_CRASH_DUMP_BYTES=0",
	)
}

// Start starts ejabberd (again) with the same dir, ports, secret and users
// and waits until it reports being started and its c2s, component and http
// ports accept connections.
func (s *EjabberdServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.t.Fatalf("testserver: Start: ejabberd already running (pid %d)", s.proc.pid())
	}
	logOffset := fileSize(s.LogPath())
	// erl execs erlexec, which execs beam.smp: the pid is the VM's, and
	// SIGTERM makes it stop ejabberd cleanly (init:stop/0).
	args := []string{"-noinput", "+K", "true", "-mnesia", "dir", `"` + filepath.Join(s.Dir, "spool") + `"`, "-s", "ejabberd"}
	// Flags for the Erlang VM, for profiling: "+JPperf true" has the JIT
	// write the map that lets perf name Erlang functions.
	args = append(args, strings.Fields(os.Getenv("MEDIASLOT_EJABBERD_ERL_FLAGS"))...)
	cmd := exec.Command(s.erl, args...)
	cmd.Env = s.env()
	cmd.Dir = s.Dir
	p, err := startProcess(cmd, filepath.Join(s.Dir, "stdout.log"))
	if err != nil {
		s.t.Fatalf("testserver: starting ejabberd: %v", err)
	}
	s.proc = p

	deadline := time.Now().Add(ejabberdStart)
	err = p.waitFor("ejabberd", deadline, func() (bool, error) {
		log := readFrom(s.LogPath(), logOffset)
		if strings.Contains(log, "[critical]") || strings.Contains(log, "eaddrinuse") {
			return true, errors.New("ejabberd failed to start (see log above)")
		}
		if strings.Contains(log, " is started in the node ") {
			return true, nil
		}
		return false, fmt.Errorf("ejabberd did not start within %v", ejabberdStart)
	})
	if err == nil {
		err = p.waitListening("ejabberd", deadline, ejabberdStart, s.C2S, s.Component, s.HTTP)
	}
	if err != nil {
		s.stopLocked()
		s.logTails()
		s.t.Fatalf("testserver: %v", err)
	}
}

// register creates an account through mod_http_api (allowed from loopback
// by the config); an existing account is left as it is.
func (s *EjabberdServer) register(user, password string) error {
	body, _ := json.Marshal(map[string]string{"user": user, "host": s.Domain, "password": password})
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post("http://"+s.HTTP+"/api/register", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("registering %s: %w", user, err)
	}
	defer resp.Body.Close()
	var msg bytes.Buffer
	_, _ = msg.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK && !strings.Contains(msg.String(), "already registered") {
		return fmt.Errorf("registering %s: %s: %s", user, resp.Status, msg.String())
	}
	return nil
}

// Stop stops ejabberd: SIGTERM, up to 10 s grace, then SIGKILL. It is a
// no-op if ejabberd is not running; accounts and logs stay in Dir.
func (s *EjabberdServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *EjabberdServer) stopLocked() {
	s.proc.stop(s.t, "ejabberd", ejabberdStop)
	s.proc = nil
}

// Restart stops and starts ejabberd again (same ports, dir and users).
func (s *EjabberdServer) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// PID returns the process id of the running VM, or 0.
func (s *EjabberdServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.pid()
}

// LogTail returns the last n lines of ejabberd's log.
func (s *EjabberdServer) LogTail(n int) string { return tail(s.LogPath(), n) }

func (s *EjabberdServer) logTails() {
	logTails(s.t, filepath.Join(s.Dir, "stdout.log"), s.LogPath())
}
