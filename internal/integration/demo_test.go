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

// demo is scripts/demo.sh (what `make demo` runs) on free ports.
type demo struct {
	cmd   *exec.Cmd
	out   *testserver.LogBuffer
	c2s   string
	http  string
	admin string // mediaslot's admin listener
}

func startDemo(t *testing.T, dir string, ports []string, env ...string) *demo {
	t.Helper()
	d := &demo{out: &testserver.LogBuffer{}, c2s: "127.0.0.1:" + ports[0], http: "127.0.0.1:" + ports[3], admin: freePort(t)}
	_, adminPort, _ := net.SplitHostPort(d.admin)
	d.cmd = exec.Command(filepath.Join(testserver.ModuleRoot(t), "scripts", "demo.sh"))
	d.cmd.Env = append(os.Environ(), "DEMO_DIR="+dir, "MEDIASLOT_BIN="+binary,
		"DEMO_C2S_PORT="+ports[0], "DEMO_COMPONENT_PORT="+ports[1], "DEMO_PROSODY_HTTP_PORT="+ports[2], "DEMO_HTTP_PORT="+ports[3], "DEMO_ADMIN_PORT="+adminPort)
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, like a terminal job
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", tail(d.out.String(), 60))
		}
	})
	testserver.WaitFor(t, 30*time.Second, "mediaslot demo ready", func() bool {
		return strings.Contains(d.out.String(), "mediaslot demo ready")
	})
	return d
}

// stop sends sig (SIGINT to the whole process group, as Ctrl-C in a terminal
// does, or SIGTERM to the script alone, as a service manager does) and
// requires everything to be gone within 10 s and a clean exit.
func (d *demo) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if sig == syscall.SIGINT {
		_ = syscall.Kill(-d.cmd.Process.Pid, sig)
	} else {
		_ = d.cmd.Process.Signal(sig)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo exited with %v after %v, want 0\n%s", err, sig, tail(d.out.String(), 10))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("demo did not stop within 10 s of %v", sig)
	}
	for _, addr := range []string{d.c2s, d.http} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo stopped", addr)
		}
	}
}

// TestDemo runs `make demo`'s script as a newcomer would, uploads through it
// with a real client, stops it with SIGTERM, starts it again and finds the
// file still there (state in DEMO_DIR survives), and stops it again.
func TestDemo(t *testing.T) {
	testserver.RequireTool(t, "prosody")
	dir := t.TempDir()
	ports := freePorts(t, 4)
	d := startDemo(t, dir, ports)
	if !strings.Contains(d.out.String(), "c2s "+d.c2s) || !strings.Contains(d.out.String(), "upload.localhost") {
		t.Errorf("ready line lacks connection details:\n%s", d.out.String())
	}
	if !strings.Contains(d.out.String(), "http://"+d.admin+"/metrics") {
		t.Errorf("ready line lacks the admin listener:\n%s", d.out.String())
	}
	if code, body := adminGet(t, d.admin, "/readyz"); code != 200 {
		t.Errorf("demo /readyz: %d %s", code, body)
	}
	srv := &testserver.Server{Domain: "localhost", C2S: d.c2s}
	file, data := writeRandomFile(t, "demo.png", 4096)
	res := slixUpload(t, srv, "carol", "upload.localhost", file)
	checkSlixUpload(t, res, data, "image/png")
	if !strings.HasPrefix(res.GetURL, "http://"+d.http+"/file/") {
		t.Errorf("GET URL %s not on the demo's HTTP address %s", res.GetURL, d.http)
	}
	// the README's send and receive example works on the demo as written
	readmeSendExample(t, d, file)

	// the relay runs too: a message for bob, who is offline, waits in .demo/ across the restart
	startSlixRelay(t, srv, "send", "carol", relayStanza(t, srv, "demo1", `<body>`+res.GetURL+`</body>`, "bob"), 1).wait(t)
	d.stop(t, syscall.SIGINT)

	d = startDemo(t, dir, ports)
	checkDemoRestarted(t, srv, res.GetURL, data)
	d.stop(t, syscall.SIGTERM)
}

// checkDemoRestarted requires what a demo kept across its restart: the relay
// message queued for offline bob (it names getURL) and the file at getURL.
func checkDemoRestarted(t *testing.T, srv *testserver.Server, getURL string, data []byte) {
	t.Helper()
	if got := startSlixRelay(t, srv, "receive", "bob", "1", 15).wait(t); len(got.Messages) != 1 || !strings.Contains(got.Messages[0], getURL) {
		t.Errorf("relay message queued before the restart: %+v", got)
	}
	getSame(t, getURL, data)
}

// freePorts is testserver.FreePorts, the port numbers alone.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	for _, addr := range testserver.FreePorts(t, n) {
		_, p, _ := net.SplitHostPort(addr)
		ports = append(ports, p)
	}
	return ports
}

// TestDemoS3 runs `make demo-s3`'s script: uploads go to versitygw, downloads
// through mediaslot's front.
func TestDemoS3(t *testing.T) {
	testserver.RequireTool(t, "prosody")
	testserver.VersityGW(t).Stop() // builds the binary if needed, so the script finds it
	ports := freePorts(t, 5)
	d := startDemo(t, t.TempDir(), ports[:4], "DEMO_STORE=s3", "DEMO_S3_PORT="+ports[4],
		"MEDIASLOT_TOOLS_DIR="+filepath.Join(testserver.ModuleRoot(t), "bin", "tools"))
	demoS3Upload(t, d, ports[4], "bob", "demo-s3.jpg", 50_000)
	d.stop(t, syscall.SIGINT)
}

// demoS3Upload uploads a fresh JPEG of size bytes as user through demo d
// with slixmpp and requires the whole flow, the PUT going to the demo's S3
// on s3Port and the GET URL to d's HTTP front (mediaslot's, or nginx).
func demoS3Upload(t *testing.T, d *demo, s3Port, user, name string, size int) (file string, res slixResult, data []byte) {
	t.Helper()
	file, data = writeRandomFile(t, name, size)
	res = slixUpload(t, &testserver.Server{Domain: "localhost", C2S: d.c2s}, user, "upload.localhost", file)
	checkSlixFlow(t, res, data, "image/jpeg", 200)
	if !strings.HasPrefix(res.PutURL, "http://127.0.0.1:"+s3Port+"/mediaslot/") || !strings.HasPrefix(res.GetURL, "http://"+d.http+"/file/") {
		t.Errorf("PUT %s should go to the demo's S3, GET %s to its front %s", res.PutURL, res.GetURL, d.http)
	}
	return file, res, data
}

// readmeSendExample runs the two commands of the README's send example
// against the demo (its ports, the test's binary) and checks bob got the file.
func readmeSendExample(t *testing.T, d *demo, file string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(testserver.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(readme), "<!-- BEGIN send example -->\n```sh\n")
	block, _, ok := strings.Cut(rest, "```\n<!-- END send example -->")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if !ok || len(lines) != 2 {
		t.Fatalf("README send example not found or not two lines: %q", block)
	}
	dir := t.TempDir()
	if err := os.Symlink(file, filepath.Join(dir, "photo.jpg")); err != nil {
		t.Fatal(err)
	}
	run := func(line string) *exec.Cmd {
		line = strings.ReplaceAll(line, "127.0.0.1:5222", d.c2s)
		line = strings.ReplaceAll(line, "./bin/mediaslot", binary)
		line = strings.TrimSuffix(line, " &")
		cmd := exec.Command("bash", "-c", line)
		cmd.Dir = dir
		return cmd
	}
	recv := run(lines[0])
	out := &testserver.LogBuffer{}
	recv.Stdout, recv.Stderr = out, out
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- recv.Wait() }()
	if b, err := run(lines[1]).CombinedOutput(); err != nil {
		t.Fatalf("README send line: %v\n%s", err, b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("README receive line: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		_ = recv.Process.Kill()
		t.Fatalf("README receive line got nothing within 20 s:\n%s", out.String())
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "inbox"))
	if len(entries) != 1 {
		t.Fatalf("inbox holds %d files, want 1\n%s", len(entries), out.String())
	}
}
