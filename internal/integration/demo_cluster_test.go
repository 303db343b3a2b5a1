package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mediaslot/testserver"
)

// TestDemoCluster runs `make demo-cluster`'s script on free ports and checks
// the facts others rely on: three instances, each ready (connected to
// ejabberd, the store probed) on its admin listener, with its PID in
// mediaslot-N.pid; the ready line; uploads to S3 and downloads through
// nginx; an instance killed with SIGKILL stays dead while the others serve
// (its files too, through nginx), and comes back by `restart N`; Ctrl-C
// stops everything within 10 s.
func TestDemoCluster(t *testing.T) {
	testserver.RequireTool(t, "nginx")
	testserver.RequireTool(t, "erl")
	dir := demoPostgresDir(t)
	testserver.VersityGW(t).Stop() // builds the binary if needed, so the script finds it
	ports := freePorts(t, 12)
	admin, inst := ports[6:9], ports[9:12]
	env := []string{"DEMO_DIR=" + dir, "MEDIASLOT_BIN=" + binary,
		"MEDIASLOT_TOOLS_DIR=" + filepath.Join(testserver.ModuleRoot(t), "bin", "tools"),
		"DEMO_C2S_PORT=" + ports[0], "DEMO_COMPONENT_PORT=" + ports[1], "DEMO_HTTP_PORT=" + ports[2],
		"DEMO_S3_PORT=" + ports[3], "DEMO_PG_PORT=" + ports[4], "DEMO_EJABBERD_HTTP_PORT=" + ports[5],
		"DEMO_ADMIN_PORTS=" + strings.Join(admin, " "), "DEMO_INSTANCE_PORTS=" + strings.Join(inst, " ")}
	script := filepath.Join(testserver.ModuleRoot(t), "scripts", "demo-cluster.sh")
	d := &demo{out: &testserver.LogBuffer{}, c2s: "127.0.0.1:" + ports[0], http: "127.0.0.1:" + ports[2]}
	d.cmd = exec.Command(script)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, like a terminal job
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidOf := func(n int) int {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("mediaslot-%d.pid", n)))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	alive := func(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			_ = d.cmd.Wait()
		}
		for n := 1; n <= 3; n++ { // in sessions of their own
			if pid := pidOf(n); alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", tail(d.out.String(), 60))
		}
	})
	testserver.WaitFor(t, 60*time.Second, "mediaslot demo ready", func() bool {
		return strings.Contains(d.out.String(), "mediaslot demo ready") || d.cmd.ProcessState != nil
	})
	if !strings.Contains(d.out.String(), "\nmediaslot demo ready") && !strings.HasPrefix(d.out.String(), "mediaslot demo ready") {
		t.Fatalf("no line begins with the ready text:\n%s", d.out.String())
	}
	for n := 1; n <= 3; n++ {
		if !alive(pidOf(n)) {
			t.Fatalf("instance %d: no live process in mediaslot-%d.pid", n, n)
		}
		if code, body := adminGet(t, "127.0.0.1:"+admin[n-1], "/readyz"); code != 200 {
			t.Errorf("instance %d /readyz: %d %s", n, code, body)
		}
	}
	srv := &testserver.Server{Domain: "localhost", C2S: d.c2s}
	file, res, data := demoS3Upload(t, d, ports[3], "carol", "cluster.jpg", 20_000)

	// carol's slots come from one instance (balancing by bare source): kill another
	issued := func(n int) float64 { return scrape(t, "127.0.0.1:"+admin[n-1])["mediaslot_slots_issued_total"] }
	victim := 1
	for issued(victim) > 0 {
		victim++
	}
	pid := pidOf(victim)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone := fmt.Sprintf("instance %d is gone", victim)
	testserver.WaitFor(t, 10*time.Second, "the demo reporting the dead instance", func() bool { return strings.Contains(d.out.String(), gone) })
	if d.cmd.ProcessState != nil || alive(pidOf(victim)) {
		t.Fatalf("after instance %d died: demo exited %v, instance alive %v", victim, d.cmd.ProcessState, alive(pidOf(victim)))
	}
	// the file is still served through nginx, whichever instance it asks first, and carol uploads again
	for range 3 {
		getSame(t, res.GetURL, data)
	}
	checkSlixFlow(t, slixUpload(t, srv, "carol", "upload.localhost", file), data, "image/jpeg", 200)
	if alive(pidOf(victim)) {
		t.Fatalf("instance %d came back by itself", victim)
	}

	// restart N brings it back
	restart := exec.Command(script, "restart", strconv.Itoa(victim))
	restart.Env = d.cmd.Env
	out, err := restart.CombinedOutput()
	if err != nil {
		t.Fatalf("restart %d: %v\n%s", victim, err, out)
	}
	testserver.WaitFor(t, 15*time.Second, "the restarted instance ready", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + admin[victim-1] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	d.stop(t, syscall.SIGINT)
	for n := 1; n <= 3; n++ {
		if alive(pidOf(n)) {
			t.Errorf("instance %d still runs after the demo stopped", n)
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+admin[n-1], time.Second); err == nil {
			c.Close()
			t.Errorf("instance %d's admin listener still accepts after the demo stopped", n)
		}
	}
}

// getSame GETs url and requires data, following a redirect to the store.
func getSame(t *testing.T, url string, data []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || sha(b) != sha(data) {
		t.Fatalf("GET %s: %s, %d bytes", url, resp.Status, len(b))
	}
}
