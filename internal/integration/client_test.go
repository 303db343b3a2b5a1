package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// cliResult is a finished mediaslot client command.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs the mediaslot binary as user (password from MEDIASLOT_PASSWORD,
// as documented) against srv, with a deadline.
func cli(t *testing.T, srv *testserver.Server, user, password string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, cliArgs(srv, user, args)...)
	cmd.Env = append(os.Environ(), "MEDIASLOT_PASSWORD="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("mediaslot %s: %v", args[0], err)
	}
	return res
}

// cliArgs puts the login flags after the subcommand.
func cliArgs(srv *testserver.Server, user string, args []string) []string {
	return append([]string{args[0], "--jid", srv.JID(user), "--server", srv.C2S, "--insecure"}, args[1:]...)
}

// receiver is a `mediaslot receive` running in the background.
type receiver struct {
	cmd            *exec.Cmd
	stdout, stderr *testserver.LogBuffer
	done           chan struct{}
	dir            string
}

func startReceive(t *testing.T, srv *testserver.Server, user string, args ...string) *receiver {
	t.Helper()
	r := &receiver{stdout: &testserver.LogBuffer{}, stderr: &testserver.LogBuffer{}, done: make(chan struct{}), dir: t.TempDir()}
	all := append([]string{"receive", "--out", r.dir, "--timeout", "60s"}, args...)
	r.cmd = exec.Command(binary, cliArgs(srv, user, all)...)
	r.cmd.Env = append(os.Environ(), "MEDIASLOT_PASSWORD="+user)
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	testserver.WaitFor(t, 15*time.Second, user+" receiving", func() bool { return strings.Contains(r.stderr.String(), "waiting for files") })
	return r
}

// wait waits for the receiver to exit and returns its exit code.
func (r *receiver) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(70 * time.Second):
		t.Fatalf("receive did not finish\nstdout:\n%s\nstderr:\n%s", r.stdout.String(), r.stderr.String())
	}
	return r.cmd.ProcessState.ExitCode()
}

// writePNG writes a smooth 800x600 picture, as a photo would be.
func writePNG(t *testing.T, name string) (string, []byte) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 800, 600))
	for y := range 600 {
		for x := range 800 {
			img.Set(x, y, color.RGBA{uint8(x / 4), uint8(y / 3), uint8((x + y) / 6), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b.Bytes()
}

// checkReceived asserts that dir holds name with exactly data.
func checkReceived(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("%v (the directory holds %v)", err, names)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s: %d bytes received, not the %d sent", name, len(got), len(data))
	}
}

// Alice sends a picture and a binary file with `mediaslot send --direct`
// to Bob, who runs `mediaslot receive`: both arrive identical, verified
// against the XEP-0446 hash; the picture goes with a thumbnail.
func TestSendReceiveDirect(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "")
	bob := startReceive(t, srv, "bob", "--count", "2")
	pic, picData := writePNG(t, "holiday été.png")
	bin, binData := writeRandomFile(t, "data.bin", 300_000)

	res := cli(t, srv, "alice", "alice", "send", "--direct", "--to", srv.JID("bob"), pic, bin)
	if res.code != 0 {
		t.Fatalf("send exited %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "uploading holiday été.png: 100%") || strings.Count(res.stdout, "sent ") != 2 {
		t.Errorf("send output:\n%s", res.stdout)
	}
	if code := bob.wait(t); code != 0 {
		t.Fatalf("receive exited %d\nstdout:\n%s\nstderr:\n%s", code, bob.stdout.String(), bob.stderr.String())
	}
	checkReceived(t, bob.dir, "holiday été.png", picData)
	checkReceived(t, bob.dir, "data.bin", binData)
	out := bob.stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^alice@localhost/\S+\tholiday été\.png\t\d+ bytes\thash ok$`),
		regexp.MustCompile(`(?m)^alice@localhost/\S+\tdata\.bin\t300000 bytes\thash ok$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("receive output lacks %s:\n%s", want, out)
		}
	}
}

// What `mediaslot send` puts on the wire, as a client library receives it:
// XEP-0446 metadata with dimensions and hash, and a thumbnail as XEP-0231
// data within 8 KB and 96 px; with --encrypt, the aesgcm link and nothing else.
func TestSendMessageFormat(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := make(chan client.Message, 4)
	bob, err := client.Dial(ctx, client.Options{
		JID: jid.MustParse(srv.JID("bob")), Password: "bob", Server: srv.C2S, Insecure: true,
		OnMessage: func(m client.Message) {
			if len(m.Files) > 0 {
				got <- m
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.SendPresence(ctx); err != nil {
		t.Fatal(err)
	}
	next := func() client.Message {
		select {
		case m := <-got:
			return m
		case <-ctx.Done():
			t.Fatal("no media message for bob")
		}
		return client.Message{}
	}

	pic, data := writePNG(t, "pic.png")
	if res := cli(t, srv, "alice", "alice", "send", "--direct", "--to", srv.JID("bob"), pic); res.code != 0 {
		t.Fatalf("send exited %d: %s", res.code, res.stderr)
	}
	m := next()
	f := m.Files[0]
	sum := sha256.Sum256(data)
	if len(m.Files) != 1 || f.Name != "pic.png" || f.MediaType != "image/png" || f.Size != int64(len(data)) ||
		!bytes.Equal(f.SHA256, sum[:]) || f.Width != 800 || f.Height != 600 || m.Body != f.URL {
		t.Errorf("message %+v, file %+v", m, f)
	}
	if th := f.Thumbnail; th == nil {
		t.Error("no thumbnail")
	} else {
		cfg, err := png.DecodeConfig(bytes.NewReader(th.Data))
		if err != nil || len(th.Data) > 8192 || cfg.Width != th.Width || cfg.Height != th.Height || th.Width != 96 || th.Height != 72 {
			t.Errorf("thumbnail %dx%d, %d bytes, %+v %v", th.Width, th.Height, len(th.Data), cfg, err)
		}
	}

	if res := cli(t, srv, "alice", "alice", "send", "--direct", "--encrypt", "--aesgcm-http", "--to", srv.JID("bob"), pic); res.code != 0 {
		t.Fatalf("send --encrypt exited %d: %s", res.code, res.stderr)
	}
	m = next()
	f = m.Files[0]
	if len(m.Files) != 1 || !strings.HasPrefix(f.URL, "aesgcm://") || m.Body != f.URL || f.Name != "" || f.Size != -1 || f.SHA256 != nil || f.Thumbnail != nil {
		t.Errorf("encrypted share leaks metadata: %+v, file %+v", m, f)
	}
}

// The same with --encrypt (XEP-0454): Bob gets the plaintext, while what
// mediaslot stores and serves is ciphertext (plaintext + 16-byte tag) under
// a name that is not the file's.
func TestSendReceiveEncrypted(t *testing.T) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, "")
	bob := startReceive(t, srv, "bob", "--count", "1", "--aesgcm-http")
	file, data := writeRandomFile(t, "secret plans.pdf", 100_000)

	res := cli(t, srv, "alice", "alice", "send", "--direct", "--encrypt", "--aesgcm-http", "--to", srv.JID("bob"), file)
	if res.code != 0 {
		t.Fatalf("send exited %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if code := bob.wait(t); code != 0 {
		t.Fatalf("receive exited %d\nstdout:\n%s\nstderr:\n%s", code, bob.stdout.String(), bob.stderr.String())
	}
	link := regexp.MustCompile(`aesgcm://(\S+)#[0-9a-f]{88}`).FindStringSubmatch(res.stdout)
	if link == nil {
		t.Fatalf("no aesgcm link with a 12-byte IV and 32-byte key in:\n%s", res.stdout)
	}
	if strings.Contains(link[1], "secret") {
		t.Errorf("the service saw the file name: %s", link[1])
	}
	entries, err := os.ReadDir(bob.dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("received %v, %v", entries, err)
	}
	checkReceived(t, bob.dir, entries[0].Name(), data)
	if !strings.HasSuffix(entries[0].Name(), ".pdf") || !strings.Contains(bob.stdout.String(), "100000 bytes\thash absent") {
		t.Errorf("received %s:\n%s", entries[0].Name(), bob.stdout.String())
	}

	resp, err := http.Get("http://" + link[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stored, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(stored) != len(data)+16 || bytes.Contains(stored, data[:64]) {
		t.Fatalf("mediaslot serves %s, %d bytes: want ciphertext of %d bytes", resp.Status, len(stored), len(data)+16)
	}
	if !strings.HasPrefix("http://"+link[1], m.HTTP) {
		t.Errorf("link %s not on mediaslot %s", link[1], m.HTTP)
	}
}

// Without --direct, send uses the component's XEP-0033 relay: one message
// for three recipients, two online and one (dave) who logs in only later
// and gets it from mediaslot's queue; the picture keeps its thumbnail.
func TestSendThroughRelay(t *testing.T) { forEachBackend(t, testSendThroughRelay) }

func testSendThroughRelay(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, backend)
	bob := startReceive(t, srv, "bob", "--count", "1")
	carol := startReceive(t, srv, "carol", "--count", "1")
	pic, data := writePNG(t, "group.png")
	res := cli(t, srv, "alice", "alice", "send", "--to", srv.JID("bob")+","+srv.JID("carol")+","+srv.JID("dave"), pic)
	if res.code != 0 || !strings.Contains(res.stdout, " via "+srv.ComponentJID()) {
		t.Fatalf("send exited %d, want it relayed via %s\nstdout:\n%s\nstderr:\n%s", res.code, srv.ComponentJID(), res.stdout, res.stderr)
	}
	dave := startReceive(t, srv, "dave", "--count", "1")
	for _, r := range []*receiver{bob, carol, dave} {
		if code := r.wait(t); code != 0 {
			t.Fatalf("receive exited %d\nstdout:\n%s\nstderr:\n%s", code, r.stdout.String(), r.stderr.String())
		}
		checkReceived(t, r.dir, "group.png", data)
		if !strings.Contains(r.stdout.String(), "hash ok") {
			t.Errorf("receive did not verify the hash: %s", r.stdout.String())
		}
	}
}

type checkReport struct {
	Service string `json:"service"`
	Results []struct {
		ID     string `json:"id"`
		Level  string `json:"level"`
		Status string `json:"status"`
		Detail string `json:"detail"`
	} `json:"results"`
}

func runCheck(t *testing.T, srv *testserver.Server, service string) (checkReport, cliResult) {
	t.Helper()
	res := cli(t, srv, "alice", "alice", "check", "--json", "--allow-http", "--service", service)
	var rep checkReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("check output (exit %d): %v\n%s\nstderr:\n%s", res.code, err, res.stdout, res.stderr)
	}
	for _, r := range rep.Results {
		t.Logf("%-4s %-6s %-24s %s", r.Status, r.Level, r.ID, r.Detail)
	}
	return rep, res
}

// mediaslot passes every MUST of the conformance suite, and every SHOULD.
func TestCheckMediaslot(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "")
	rep, res := runCheck(t, srv, srv.ComponentJID())
	if res.code != 0 {
		t.Errorf("check exited %d: %s", res.code, res.stderr)
	}
	if len(rep.Results) < 30 {
		t.Errorf("only %d checks ran", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Status == "fail" {
			t.Errorf("%s %s failed: %s", r.Level, r.ID, r.Detail)
		}
	}
}

// Prosody's mod_http_file_share is checked too. It fails the checks
// docs/CONFORMANCE.md lists and explains (one of them a MUST, so exit 10);
// a change there means the document needs updating.
func TestCheckProsodyShare(t *testing.T) {
	srv := testserver.Prosody(t)
	rep, res := runCheck(t, srv, srv.ShareJID())
	var failed []string
	for _, r := range rep.Results {
		if r.Status == "fail" {
			failed = append(failed, r.ID)
		}
	}
	const documented = "disco-listed range error-empty-filename error-zero-size put-wrong-type"
	if res.code != 10 || strings.Join(failed, " ") != documented {
		t.Errorf("share.localhost: exit %d, failed %v; docs/CONFORMANCE.md says exit 10 and %s", res.code, failed, documented)
	}
}

// Bad input ends with one clear line and the documented exit code.
func TestClientExitCodes(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "")
	file, _ := writeRandomFile(t, "a.txt", 10)
	for _, c := range []struct {
		name     string
		password string
		args     []string
		code     int
		msg      string
	}{
		{"wrong password", "wrong", []string{"send", "--to", srv.JID("bob"), file}, 3, "refused the login"},
		{"unreachable", "alice", []string{"send", "--server", "127.0.0.1:1", "--to", srv.JID("bob"), file}, 4, "cannot reach the server"},
		{"no upload service", "alice", []string{"send", "--service", srv.Domain, "--to", srv.JID("bob"), file}, 5, "no XEP-0363 upload service"},
		{"recipient refused", "alice", []string{"send", "--direct", "--to", "nobody@" + srv.Domain, file}, 8, "nobody@localhost refused"},
		{"timeout", "bob", []string{"receive", "--out", t.TempDir(), "--count", "1", "--timeout", "2s"}, 9, "timed out"},
		{"no password", "", []string{"send", "--to", srv.JID("bob"), file}, 2, "no password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := cli(t, srv, "alice", c.password, c.args...)
			if c.args[0] == "receive" {
				res = cli(t, srv, "bob", c.password, c.args...)
			}
			var lines []string // the error, apart from receive's "online" notice
			for _, l := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
				if !strings.Contains(l, "waiting for files") {
					lines = append(lines, l)
				}
			}
			if res.code != c.code || !strings.Contains(res.stderr, c.msg) || len(lines) != 1 {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and one line with %q", res.code, res.stderr, c.code, c.msg)
			}
		})
	}
}

// A file over the service's max-file-size is refused before any upload.
func TestSendTooLarge(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "\n[upload]\nmax_file_size = 1000\n")
	file, _ := writeRandomFile(t, "big.bin", 1001)
	res := cli(t, srv, "alice", "alice", "send", "--to", srv.JID("bob"), file)
	if res.code != 6 || !strings.Contains(res.stderr, "at most 1000") || strings.Contains(res.stdout, "uploading") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
}

// Without --insecure, a server certificate this machine does not trust (the
// test server's is self-signed) ends the client commands with a hint at
// --insecure.
func TestClientSuggestsInsecure(t *testing.T) {
	srv := testserver.Prosody(t)
	file, _ := writeRandomFile(t, "a.txt", 10)
	for _, args := range [][]string{
		{"send", "--to", srv.JID("bob"), file},
		{"receive", "--out", t.TempDir(), "--count", "1"},
		{"check", "--service", srv.ComponentJID()},
	} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{args[0], "--jid", srv.JID("alice"), "--server", srv.C2S}, args[1:]...)...)
			cmd.Env = append(os.Environ(), "MEDIASLOT_PASSWORD=alice")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "x509: certificate") || !strings.Contains(string(out), "add --insecure") {
				t.Errorf("%v: %v\n%s", args, err, out)
			}
		})
	}
}
