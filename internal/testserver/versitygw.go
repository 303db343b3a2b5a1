package testserver

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	log  string // stdout and stderr of versitygw (outside Dir: files there would be buckets)
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
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
	addr := freePorts(t, 1)[0]
	s := &S3{
		Endpoint:  "http://" + addr,
		Region:    "us-east-1",
		Bucket:    "mediaslot-test",
		AccessKey: "mediaslot",
		SecretKey: randomHex(t, 16),
		Dir:       t.TempDir(),
		log:       filepath.Join(t.TempDir(), "versitygw.log"),
		t:         t,
	}
	// A directory in the posix root is a bucket; that saves a signed CreateBucket.
	if err := os.Mkdir(filepath.Join(s.Dir, s.Bucket), 0o755); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	cmd := exec.Command(bin, "--port", addr, "--region", s.Region,
		"--quiet", "--keep-alive", "posix", s.Dir)
	cmd.Env = append(versityGWEnv(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("testserver: starting versitygw: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.logTail()
		}
	})
	if err := s.waitReady(); err != nil {
		t.Fatalf("testserver: %v", err) // the cleanup stops it and logs the tail
	}
	return s
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
	deadline := time.Now().Add(versityGWStart)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited during startup: %v", s.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if server := resp.Header.Get("Server"); server != "VERSITYGW" {
				return fmt.Errorf("%s is answered by %q, not versitygw", s.Endpoint, server)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not answer on %s within %v: %v", s.Endpoint, versityGWStart, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops versitygw: SIGTERM, up to 5 s grace, then SIGKILL. It is a
// no-op if it is not running; the objects stay in Dir.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(versityGWStop):
	}
	s.t.Logf("testserver: versitygw (pid %d) ignored SIGTERM for %v, killing it", cmd.Process.Pid, versityGWStop)
	_ = cmd.Process.Kill()
	<-done
}

func (s *S3) logTail() {
	s.t.Logf("testserver: last %d lines of %s:\n%s", logTailLines, s.log, tail(s.log, logTailLines))
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
