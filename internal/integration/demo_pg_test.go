package integration

import (
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

// TestDemoPostgres runs `make demo-pg`'s script: the demo's data in the
// PostgreSQL it starts (on a free port here, 5433 in make demo-pg), its
// files in the demo's state directory. An upload's record and a relay
// message queued for offline bob survive Ctrl-C and a second start; the
// cluster is stopped with the demo.
func TestDemoPostgres(t *testing.T) {
	testserver.RequireTool(t, "prosody")
	dir := demoPostgresDir(t)
	ports := freePorts(t, 5)
	pgAddr := "127.0.0.1:" + ports[4]
	env := []string{"DEMO_DATA=postgres", "DEMO_PG_PORT=" + ports[4]}
	d := startDemo(t, dir, ports[:4], env...)
	if !strings.Contains(d.out.String(), "PostgreSQL on "+pgAddr) {
		t.Errorf("ready line lacks the database:\n%s", d.out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres", "data", "PG_VERSION")); err != nil {
		t.Errorf("the cluster is not in the demo's state directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mediaslot", "data", "mediaslot.db")); err == nil {
		t.Error("mediaslot wrote a bbolt database although its data is in PostgreSQL")
	}
	srv := &testserver.Server{Domain: "localhost", C2S: d.c2s}
	file, data := writeRandomFile(t, "demo-pg.png", 4096)
	res := slixUpload(t, srv, "carol", "upload.localhost", file)
	checkSlixUpload(t, res, data, "image/png")
	startSlixRelay(t, srv, "send", "carol", relayStanza(t, srv, "demopg1", `<body>`+res.GetURL+`</body>`, "bob"), 1).wait(t)
	d.stop(t, syscall.SIGINT)
	if c, err := net.DialTimeout("tcp", pgAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("PostgreSQL still accepts connections on %s after the demo stopped", pgAddr)
	}

	d = startDemo(t, dir, ports[:4], env...)
	checkDemoRestarted(t, srv, res.GetURL, data)
	d.stop(t, syscall.SIGTERM)
}

// demoPostgresDir is a state directory for a demo that runs PostgreSQL
// (skipping without PostgreSQL's binaries). Run as root, the script runs
// PostgreSQL as the postgres user, which must reach the cluster in it. The
// cleanup, registered before the demo's own so that it runs after it, stops
// a cluster that a demo killed mid-test left running in a session of its own.
func demoPostgresDir(t *testing.T) string {
	t.Helper()
	bin, err := testserver.PostgresBinDir()
	if err != nil {
		if testserver.IntegrationRequired() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "stop", "-D", filepath.Join(dir, "postgres", "data"), "-m", "immediate")
		if os.Geteuid() == 0 {
			cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--"}, cmd.Args...)...)
		}
		_ = cmd.Run() // fails when the demo stopped it, as it should
	})
	return dir
}
