// Package integration runs mediaslot, built as the real binary, against a
// private Prosody and real clients (Debian's slixmpp and go-sendxmpp).
// Under CI=true or MEDIASLOT_REQUIRE_INTEGRATION=1 a missing server or client
// fails the run; elsewhere it skips.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// binary is the mediaslot binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mediaslot-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mediaslot")
	out, err := exec.Command("go", "build", "-o", binary, "mediaslot/cmd/mediaslot").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building mediaslot: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// mediaslot is a running `mediaslot serve`.
type mediaslot struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    *testserver.LogBuffer
	Config string
	HTTP   string // base URL of its HTTP front
}

// freePort is a loopback address with a free port (testserver.FreePorts).
func freePort(t *testing.T) string {
	t.Helper()
	return testserver.FreePorts(t, 1)[0]
}

// startMediaslot starts mediaslot for srv and waits until its component is connected.
func startMediaslot(t *testing.T, srv testserver.XMPP, extra string) *mediaslot {
	t.Helper()
	m := launchMediaslot(t, srv, extra)
	m.waitConnected(1)
	return m
}

// launchMediaslot writes a config for srv (extra is appended to it) and
// starts the binary without waiting for anything.
func launchMediaslot(t *testing.T, srv testserver.XMPP, extra string) *mediaslot {
	t.Helper()
	cfg, addr := writeConfig(t, srv, extra)
	m := &mediaslot{t: t, log: &testserver.LogBuffer{}, Config: cfg, HTTP: "http://" + addr}
	m.cmd = exec.Command(binary, "serve", "--config", cfg)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("mediaslot log:\n%s", tail(m.log.String(), 80))
		}
	})
	return m
}

// waitConnected waits until the component has connected n times in all.
func (m *mediaslot) waitConnected(n int) {
	m.t.Helper()
	testserver.WaitFor(m.t, 15*time.Second, fmt.Sprintf("component connection #%d", n), func() bool {
		return strings.Count(m.log.String(), "component connected") >= n
	})
}

// waitLinkDown waits until the log shows n more "component link down"
// lines than it had at since (a byte offset into it): the drop, then each
// failed attempt to reconnect.
func (m *mediaslot) waitLinkDown(since, n int) {
	m.t.Helper()
	testserver.WaitFor(m.t, 20*time.Second, fmt.Sprintf("%d component link down lines", n), func() bool {
		return strings.Count(m.log.String()[since:], "component link down") >= n
	})
}

func (m *mediaslot) stop() {
	if m.cmd.Process == nil || m.cmd.ProcessState != nil {
		return
	}
	if !testserver.Stop(m.cmd, os.Interrupt, 10*time.Second) {
		m.t.Errorf("mediaslot did not stop within 10 s of SIGINT")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// writeConfig writes a mediaslot config for srv in a new directory and
// returns its path and the HTTP listener's address. extra is appended: its
// first lines, before any [section], belong to [log]. A [store] or [data]
// section in extra replaces the default one (a disk store in files/, bbolt
// in data/).
func writeConfig(t *testing.T, srv testserver.XMPP, extra string) (cfg, addr string) {
	t.Helper()
	addr = freePort(t)
	cfg = filepath.Join(t.TempDir(), "mediaslot.toml")
	storeConf := "[store]\ndir = \"files\"\n"
	if strings.Contains(extra, "[store]") {
		storeConf = ""
	}
	dataConf := "[data]\ndir = \"data\"\n"
	if strings.Contains(extra, "[data]") {
		dataConf = ""
	}
	conf := fmt.Sprintf(`[component]
jid = %q
server = %q
secret = %q
reconnect_max = "1s"

[http]
listen = %q
public_url = "http://%s"

%s
%s
[log]
level = "debug"
%s`, srv.ComponentJID(), srv.ComponentAddr(), srv.ComponentSecret(), addr, addr, storeConf, dataConf, extra)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, addr
}
