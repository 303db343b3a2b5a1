package testserver

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// versitygw, the Versity S3 Gateway (Apache-2.0), is the real S3 server of
// the tests: it enforces SigV4, presigned URLs, content-length and
// content-type, and conditional writes (see TESTENV.md §9). v1.8.0 is the
// only version the Go module proxy serves.
const (
	versityGWPackage = "github.com/versity/versitygw/cmd/versitygw"
	versityGWVersion = "v1.8.0"
	versityGWStart   = 10 * time.Second // until the port answers as versitygw
	versityGWStop    = 5 * time.Second  // SIGTERM grace period before SIGKILL
)

// S3 is a running private versitygw with one empty bucket.
type S3 struct {
	Endpoint  string // "http://127.0.0.1:port"; path-style addressing
	Region    string // "us-east-1"; requests signed for another region fail
	Bucket    string
	AccessKey string // the gateway's root account
	SecretKey string
	Dir       string // root of the posix backend: Dir/<Bucket>/<key> are the objects

	t    testing.TB
	bin  string // the cached versitygw binary
	log  string // stdout and stderr of versitygw (outside Dir: files there would be buckets)
	mu   sync.Mutex
	proc *process // nil while stopped
}

// VersityGW starts a private versitygw on a free loopback port with a fresh
// t.TempDir() as its data directory and stops it in t.Cleanup. The binary
// is built once into $MEDIASLOT_TOOLS_DIR, by default <module root>/bin/tools
// (scripts/versitygw.sh shares it). If it is missing and cannot be built (no
// go, no module proxy), the test is skipped, or fails when integration tests
// are required.
func VersityGW(t testing.TB) *S3 {
	t.Helper()
	bin := versityGWBinary(t)
	addr := FreePorts(t, 1)[0]
	s := &S3{
		Endpoint:  "http://" + addr,
		Region:    "us-east-1",
		Bucket:    "mediaslot-test",
		AccessKey: "mediaslot",
		SecretKey: randomHex(t, 16),
		Dir:       t.TempDir(),
		t:         t,
		bin:       bin,
		log:       filepath.Join(t.TempDir(), "versitygw.log"),
	}
	// A directory in the posix root is a bucket; that saves a signed CreateBucket.
	if err := os.Mkdir(filepath.Join(s.Dir, s.Bucket), 0o755); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			logTails(t, s.log)
		}
	})
	s.Start()
	return s
}

// Start starts versitygw (again, after Stop): same port, data directory,
// bucket and credentials, so objects stored before are served again. It
// fails the test if versitygw is running or does not come up.
func (s *S3) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.t.Fatalf("testserver: Start: versitygw already running (pid %d)", s.proc.pid())
	}
	addr := strings.TrimPrefix(s.Endpoint, "http://")
	cmd := exec.Command(s.bin, "--port", addr, "--region", s.Region,
		"--quiet", "--keep-alive", "posix", s.Dir)
	cmd.Env = append(versityGWEnv(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	p, err := startProcess(cmd, s.log)
	if err != nil {
		s.t.Fatalf("testserver: starting versitygw: %v", err)
	}
	s.proc = p
	if err := s.waitReady(); err != nil {
		s.stopLocked()
		s.t.Fatalf("testserver: %v", err) // VersityGW's cleanup logs the tail
	}
}

// Restart stops and starts versitygw again (same port, data and credentials).
func (s *S3) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// versityGWEnv is the environment without the variables versitygw reads
// its settings from, so that the caller's cannot leak in.
func versityGWEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VGW_") && !strings.HasPrefix(e, "ROOT_") {
			env = append(env, e)
		}
	}
	return env
}

// waitReady waits until the port answers with versitygw's Server header
// (any status: anonymous requests get 403). Checking the header, not just a
// connect, catches another process that took the port after freePorts.
func (s *S3) waitReady() error {
	client := &http.Client{Timeout: 250 * time.Millisecond}
	return s.proc.waitFor("versitygw", time.Now().Add(versityGWStart), func() (bool, error) {
		resp, err := client.Get(s.Endpoint + "/")
		if err != nil {
			return false, fmt.Errorf("versitygw did not answer on %s within %v: %v", s.Endpoint, versityGWStart, err)
		}
		resp.Body.Close()
		if server := resp.Header.Get("Server"); server != "VERSITYGW" {
			return true, fmt.Errorf("%s is answered by %q, not versitygw", s.Endpoint, server)
		}
		return true, nil
	})
}

// Stop stops versitygw: SIGTERM, up to 5 s grace, then SIGKILL. It is a
// no-op if it is not running; the objects stay in Dir.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *S3) stopLocked() {
	s.proc.stop(s.t, "versitygw", versityGWStop)
	s.proc = nil
}

// versityGWBinary returns the cached versitygw binary, building it first if
// it is missing. A lock file serialises builders: go test runs the packages
// of ./... in parallel, and a cold build takes minutes on two cores.
func versityGWBinary(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MEDIASLOT_TOOLS_DIR")
	if dir == "" {
		dir = filepath.Join(ModuleRoot(t), "bin", "tools")
	}
	bin := filepath.Join(dir, "versitygw")
	if isExecutable(bin) {
		return bin
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		skipOrFail(t, "testserver: %s is missing and go is not on PATH to build it: %v", bin, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".versitygw.lock"))
	if err != nil {
		t.Fatalf("testserver: locking the tools directory: %v", err)
	}
	defer unlock()
	if isExecutable(bin) { // built by another test binary while we waited
		return bin
	}
	// go install into a temporary GOBIN, then rename: a build killed half way
	// never leaves a truncated binary where the next run would trust it.
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	defer os.RemoveAll(tmp)
	t.Logf("testserver: building versitygw %s into %s (about 3 minutes with a cold build cache)", versityGWVersion, dir)
	start := time.Now()
	cmd := exec.Command(goTool, "install", versityGWPackage+"@"+versityGWVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		skipOrFail(t, "testserver: building versitygw: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "versitygw"), bin); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Logf("testserver: built versitygw in %v", time.Since(start).Round(time.Second))
	return bin
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
