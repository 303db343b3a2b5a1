package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/testserver"
)

// checkRun is one run of `mediaslot serve --check-config`.
type checkRun struct {
	code           int
	stdout, stderr string
	lines          map[string]string // check name -> "ok ...", "WARN ..." or "FAILED ..."
}

func runCheckConfig(t *testing.T, cfg string, cmdOpts ...func(*exec.Cmd)) checkRun {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--check-config", "--config", cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	for _, o := range cmdOpts {
		o(cmd)
	}
	start := time.Now()
	err := cmd.Run()
	r := checkRun{stdout: stdout.String(), stderr: stderr.String(), lines: map[string]string{}}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("--check-config took %v", d)
	}
	last := ""
	for _, line := range strings.Split(r.stdout, "\n") {
		status, rest, _ := strings.Cut(line, " ")
		if status != "ok" && status != "FAILED" && status != "WARN" {
			if last != "" && strings.HasPrefix(line, "    ") { // a continuation line
				r.lines[last] += "\n" + strings.TrimSpace(line)
			}
			continue
		}
		rest = strings.TrimSpace(rest)
		name, detail, _ := strings.Cut(rest, "  ")
		if strings.HasPrefix(rest, "token key ") { // the one name with a space
			name, detail = "token key", strings.TrimPrefix(rest, "token key")
		}
		r.lines[name] = status + " " + strings.TrimSpace(detail)
		last = name
	}
	return r
}

// want checks that check name has status and its text holds every part.
func (r checkRun) want(t *testing.T, name, status string, parts ...string) {
	t.Helper()
	line, ok := r.lines[name]
	if !ok || !strings.HasPrefix(line, status+" ") {
		t.Errorf("check %s: want %s, got %q\nstdout:\n%s\nstderr:\n%s", name, status, line, r.stdout, r.stderr)
		return
	}
	for _, p := range parts {
		if !strings.Contains(line, p) {
			t.Errorf("check %s: %q lacks %q", name, line, p)
		}
	}
}

// failed checks the exit code and summary of a run with n failed checks.
func (r checkRun) failed(t *testing.T, n int) {
	t.Helper()
	if n == 0 {
		if r.code != 0 || !strings.Contains(r.stdout, "checks ok") {
			t.Errorf("want exit 0 and all checks ok, got %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		return
	}
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("%d of ", n)) || !strings.Contains(r.stderr, "checks FAILED") {
		t.Errorf("want exit 1 and %d failed checks, got %d\n%s%s", n, r.code, r.stdout, r.stderr)
	}
}

// edit returns the config file at cfg with old replaced by new, as a new file.
func edit(t *testing.T, cfg, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q", cfg, old)
	}
	p := filepath.Join(t.TempDir(), "mediaslot.toml")
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --check-config against a real Prosody: all well, then each thing it
// checks broken in turn, with the words it promises.
func TestCheckConfigXMPP(t *testing.T) {
	srv := testserver.Prosody(t)
	cfg, _ := writeConfig(t, srv, "")

	t.Run("all ok", func(t *testing.T) {
		r := runCheckConfig(t, cfg)
		r.failed(t, 0)
		r.want(t, "config", "ok", cfg)
		r.want(t, "xmpp", "ok", "accepted the handshake for upload.localhost")
		r.want(t, "store", "ok", "does not exist yet")
		r.want(t, "database", "ok", "does not exist yet")
		r.want(t, "token key", "ok")
		r.want(t, "http", "ok", "is free")
		r.want(t, "public", "ok", "reached http.listen")
	})
	t.Run("wrong secret", func(t *testing.T) {
		r := runCheckConfig(t, edit(t, cfg, srv.Secret, "not-the-secret"))
		r.failed(t, 1)
		r.want(t, "xmpp", "FAILED", "handshake refused: the secret does not match component_secret in prosody.cfg.lua for upload.localhost")
	})
	t.Run("nothing listening", func(t *testing.T) {
		addr := freePort(t)
		r := runCheckConfig(t, edit(t, cfg, srv.Component, addr))
		r.failed(t, 1)
		r.want(t, "xmpp", "FAILED", "cannot connect to "+addr+": connection refused", "component_ports")
	})
	t.Run("unknown component", func(t *testing.T) {
		r := runCheckConfig(t, edit(t, cfg, `jid = "upload.localhost"`, `jid = "media.localhost"`))
		r.failed(t, 1)
		r.want(t, "xmpp", "FAILED", "does not know media.localhost as an external component", `Component "media.localhost"`)
	})
	t.Run("client port", func(t *testing.T) {
		r := runCheckConfig(t, edit(t, cfg, srv.Component, srv.C2S))
		r.failed(t, 1)
		r.want(t, "xmpp", "FAILED", "does not know upload.localhost as an external component", "client port", "component_ports")
	})
	t.Run("invalid config", func(t *testing.T) {
		r := runCheckConfig(t, edit(t, cfg, "[data]", "[upload]\nmax_file_size = -1\nslot_lifetime = \"1s\"\n[data]"))
		r.failed(t, 1)
		r.want(t, "config", "FAILED", "is not usable", "upload.max_file_size must be positive", "upload.slot_lifetime must be at least 10s")
		if len(r.lines) != 1 {
			t.Errorf("checks ran on an invalid config:\n%s", r.stdout)
		}
	})
	t.Run("short token key", func(t *testing.T) {
		r := runCheckConfig(t, edit(t, cfg, "[data]", "[upload]\ntoken_key = \"short\"\n[data]"))
		r.failed(t, 1)
		r.want(t, "token key", "FAILED", "the token key is 5 bytes; it must be at least 32")
	})
	t.Run("store dir is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "plain")
		_ = os.WriteFile(file, nil, 0o600)
		r := runCheckConfig(t, edit(t, cfg, `dir = "files"`, fmt.Sprintf("dir = %q", file)))
		r.failed(t, 1)
		r.want(t, "store", "FAILED", file+" is not a directory")
	})
	t.Run("missing TLS certificate", func(t *testing.T) {
		r := runCheckConfig(t, edit(t, cfg, "[store]", "tls_cert = \"nope.crt\"\ntls_key = \"nope.key\"\n[store]"))
		r.failed(t, 1)
		r.want(t, "http", "FAILED", "cannot load the TLS certificate", "nope.crt")
	})
	t.Run("unwritable store dir", func(t *testing.T) { checkUnwritableStore(t, srv) })
	t.Run("locked database", func(t *testing.T) {
		data := filepath.Join(filepath.Dir(cfg), "data")
		_ = os.MkdirAll(data, 0o700)
		db, err := bolt.Open(filepath.Join(data, "mediaslot.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		r := runCheckConfig(t, cfg)
		r.failed(t, 1)
		r.want(t, "database", "FAILED", "is locked by another process: is mediaslot already running?")
	})
	t.Run("damaged database", func(t *testing.T) {
		fresh := edit(t, cfg, "[data]", "[data]")
		db := filepath.Join(filepath.Dir(fresh), "data", "mediaslot.db")
		_ = os.MkdirAll(filepath.Dir(db), 0o700)
		dbfiletest.Sound(t, db, 1000)
		dbfiletest.Truncate(t, db)
		r := runCheckConfig(t, fresh)
		r.failed(t, 1)
		r.want(t, "database", "FAILED", db+" is damaged: ", "it was cut short", "restore the file from a backup", "mediaslot db check")
	})
	t.Run("empty token key file", func(t *testing.T) {
		fresh := edit(t, cfg, "[data]", "[data]")
		key := filepath.Join(filepath.Dir(fresh), "data", "token.key")
		_ = os.MkdirAll(filepath.Dir(key), 0o700)
		_ = os.WriteFile(key, nil, 0o600)
		r := runCheckConfig(t, fresh)
		r.failed(t, 1)
		r.want(t, "token key", "FAILED", key+" has 0 bytes; a token key has 32", "Delete it")
	})
	t.Run("mediaslot running", func(t *testing.T) {
		admin := freePort(t)
		m := startMediaslot(t, srv, fmt.Sprintf("[admin]\nlisten = %q\n", admin))
		r := runCheckConfig(t, m.Config)
		r.failed(t, 4)
		r.want(t, "xmpp", "FAILED", "already has a component connected as upload.localhost: is mediaslot already running?")
		r.want(t, "database", "FAILED", "is locked by another process")
		r.want(t, "http", "FAILED", "is in use: is mediaslot already running")
		r.want(t, "admin", "FAILED", admin+" is in use")
		r.want(t, "store", "ok", "a probe file was written, read back and deleted")
		r.want(t, "public", "ok", "not probed")
		m.stop()
		r = runCheckConfig(t, m.Config)
		r.failed(t, 0)
		r.want(t, "database", "ok", "opens and is not in use")
		r.want(t, "admin", "ok")
	})
}

// --check-config warns when a request to public_url does not reach
// http.listen, or http.tls_cert does not cover public_url's host; a
// warning leaves the exit code 0.
func TestCheckConfigPublicURL(t *testing.T) {
	srv := testserver.Prosody(t)
	cfg, addr := writeConfig(t, srv, "")
	_, port, _ := net.SplitHostPort(addr)
	cert, key := writeIPCert(t, t.TempDir()) // for 127.0.0.1 only
	public := func(u string, withTLS bool) string {
		line := fmt.Sprintf("public_url = %q", u)
		if withTLS {
			line += fmt.Sprintf("\ntls_cert = %q\ntls_key = %q", cert, key)
		}
		return edit(t, cfg, fmt.Sprintf("public_url = %q", "http://"+addr), line)
	}
	warned := func(t *testing.T, r checkRun) {
		t.Helper()
		r.failed(t, 0)
		if !strings.Contains(r.stdout, "1 with a warning") {
			t.Errorf("summary does not count the warning:\n%s", r.stdout)
		}
	}
	t.Run("another port, nothing there", func(t *testing.T) {
		r := runCheckConfig(t, public("http://"+freePort(t), false))
		warned(t, r)
		r.want(t, "public", "WARN", "did not reach http.listen "+addr, "connection refused")
	})
	t.Run("another server answers", func(t *testing.T) {
		other := httptest.NewServer(http.NotFoundHandler())
		defer other.Close()
		r := runCheckConfig(t, public(other.URL, false))
		warned(t, r)
		r.want(t, "public", "WARN", "was answered (404 Not Found) by something other than http.listen "+addr)
	})
	t.Run("TLS", func(t *testing.T) {
		r := runCheckConfig(t, public("https://"+addr, true))
		r.failed(t, 0)
		r.want(t, "public", "ok", "reached http.listen "+addr, "the TLS certificate covers 127.0.0.1")
	})
	t.Run("certificate for another host", func(t *testing.T) {
		r := runCheckConfig(t, public("https://localhost:"+port, true))
		warned(t, r)
		r.want(t, "public", "WARN", "the TLS certificate "+cert+" does not cover localhost")
		if strings.Contains(r.lines["public"], "did not reach") {
			t.Errorf("localhost leads to the listener: %s", r.lines["public"])
		}
	})
	t.Run("http to the TLS listener", func(t *testing.T) {
		r := runCheckConfig(t, public("http://"+addr, true))
		warned(t, r)
		r.want(t, "public", "WARN", "was answered (400 Bad Request) by something other than http.listen")
	})
}

// checkUnwritableStore runs the check as an unprivileged user (root may
// write anywhere) on a store directory only root may write to.
func checkUnwritableStore(t *testing.T, srv *testserver.Server) {
	dir := t.TempDir()
	store := filepath.Join(dir, "files")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mediaslot.toml")
	conf := fmt.Sprintf("[component]\njid = %q\nserver = %q\nsecret = %q\n[http]\nlisten = %q\n[store]\ndir = %q\n[data]\ndir = %q\n",
		srv.ComponentJID(), srv.Component, srv.Secret, freePort(t), store, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var asNobody func(*exec.Cmd)
	if os.Geteuid() == 0 {
		// nobody must reach the binary and the config: copy the binary
		// next to the config and open the temporary directories' modes.
		bin := filepath.Join(dir, "mediaslot")
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
			_ = os.Chmod(p, 0o755)
		}
		asNobody = func(c *exec.Cmd) {
			c.Path, c.Args[0] = bin, bin
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
	} else {
		_ = os.Chmod(store, 0o555)
		asNobody = func(*exec.Cmd) {}
	}
	r := runCheckConfig(t, cfg, asNobody)
	r.want(t, "store", "FAILED", "cannot write in "+store, "permission denied", "make it writable for the user mediaslot runs as")
	if r.code != 1 {
		t.Errorf("exit code %d", r.code)
	}
}

// --check-config against a real S3 server (versitygw): all well (a probe
// object is written, read and deleted, and nothing is left), then a bucket
// that does not exist, a wrong secret key and an endpoint nobody answers.
func TestCheckConfigS3(t *testing.T) {
	srv := testserver.Prosody(t)
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) { testCheckConfigS3(t, srv, gw) })
}

func testCheckConfigS3(t *testing.T, srv *testserver.Server, gw *testserver.S3) {
	cfg, _ := writeConfig(t, srv, gw.StoreConfig("redirect"))

	r := runCheckConfig(t, cfg)
	r.failed(t, 0)
	r.want(t, "store", "ok", "bucket "+gw.Bucket+" at "+gw.Endpoint, "probe object was written, read back and deleted")
	left, err := gw.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &gw.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range left.Contents {
		t.Errorf("the check left %s in the bucket", *o.Key)
	}
	for _, c := range []struct {
		name, old, new string
		words          []string
	}{
		{"missing bucket", fmt.Sprintf("bucket = %q", gw.Bucket), `bucket = "no-such-bucket"`, []string{"bucket does not exist", "no-such-bucket"}},
		{"wrong secret", fmt.Sprintf("secret_access_key = %q", gw.SecretKey), `secret_access_key = "wrong-secret-key"`,
			[]string{"credentials rejected", "the secret key is wrong", "MEDIASLOT_S3_SECRET_ACCESS_KEY"}},
		{"unknown access key", fmt.Sprintf("access_key_id = %q", gw.AccessKey), `access_key_id = "nobody"`, []string{"credentials rejected", `"nobody"`}},
		{"unreachable", gw.Endpoint, "http://" + freePort(t), []string{"unreachable", "store.s3.endpoint"}},
		{"wrong region", fmt.Sprintf("region = %q", gw.Region), `region = "eu-central-1"`, []string{"wrong region", `set store.s3.region to "us-east-1"`}},
	} {
		if c.name == "wrong region" && !gw.ChecksRegion {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			r := runCheckConfig(t, edit(t, cfg, c.old, c.new))
			r.failed(t, 1)
			r.want(t, "store", "FAILED", c.words...)
		})
	}
}
