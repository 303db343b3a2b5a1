package testserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// s3Server says how to build, start and recognise one S3 server. The S3
// suites run against each of s3Servers (EachS3): versitygw and MinIO are
// the two that the Go module proxy serves and that verify presigned SigV4
// with its signed length and type, as mediaslot relies on.
type s3Server struct {
	name    string // binary name and subtest name
	pkg     string // go install path
	version string // keep in step with scripts/gotool.sh
	// module, if set, is pkg's module, built in a throwaway module of its
	// own: go install refuses modules whose go.mod has replace directives.
	module string
	server string // the Server header it answers with (a prefix: some add their version)
	ready  string // path that answers when it is up
	// ports is how many loopback ports the server needs besides its S3
	// port (S3.ports), kept across restarts.
	ports int
	// setup, if set, runs once before the first start, to write what the
	// server reads at every start into S3.etc.
	setup func(s *S3)
	// writable, if set, tells whether the server can store objects yet,
	// once its ready path answers (which may be earlier).
	writable func(s *S3, c *http.Client) (bool, error)
	args     func(s *S3) []string
	env      func(s *S3) []string
	// mkBucket: the bucket is a plain directory of the data directory
	// (versitygw's posix backend, rclone's local one); otherwise Start
	// creates it with CreateBucket when the server first comes up.
	mkBucket bool
	// What the server implements, for the tests that depend on it.
	bucketCORS   bool // PutBucketCors (else 501)
	checksRegion bool // refuses requests signed for another region
}

// versitygw, the Versity S3 Gateway (Apache-2.0): it enforces SigV4,
// presigned URLs, content-length and content-type, and conditional writes
// (see TESTENV.md §9). v1.8.0 is the only version the Go module proxy
// serves.
var versityGWServer = s3Server{
	name: "versitygw", pkg: "github.com/versity/versitygw/cmd/versitygw", version: "v1.8.0",
	server: "VERSITYGW", ready: "/",
	args: func(s *S3) []string {
		return []string{"--port", s.addr(), "--region", s.Region, "--quiet", "--keep-alive", "posix", s.Dir}
	},
	env: func(s *S3) []string {
		return []string{"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey}
	},
	mkBucket: true, bucketCORS: true, checksRegion: true,
}

// MinIO (AGPL-3.0, run as a separate program, never linked), the most
// deployed self-hosted S3. The module proxy serves no release tags of it
// (they are not semantic versions), only commits: this is the newest there
// was. A cold build takes several minutes, so `make test` builds it before
// the tests (scripts/gotool.sh).
var minIOServer = s3Server{
	name: "minio", pkg: "github.com/minio/minio", version: "v0.0.0-20260212201848-7aac2a2c5b7c",
	server: "MinIO", ready: "/minio/health/ready",
	args: func(s *S3) []string { return []string{"server", "--quiet", "--address", s.addr(), s.Dir} },
	env: func(s *S3) []string {
		return []string{"MINIO_ROOT_USER=" + s.AccessKey, "MINIO_ROOT_PASSWORD=" + s.SecretKey,
			"MINIO_SITE_REGION=" + s.Region, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}
	},
	checksRegion: true,
}

// rclone `serve s3` on its local backend, as operators put it in front of
// other storage; Debian's rclone is too old to have it. Only `make
// test-s3-servers` runs it.
var rcloneServer = s3Server{
	name: "rclone", pkg: "github.com/rclone/rclone", version: "v1.76.0",
	server: "AmazonS3", ready: "/",
	args: func(s *S3) []string {
		return []string{"serve", "s3", "--auth-key", s.AccessKey + "," + s.SecretKey, "--addr", s.addr(), s.Dir}
	},
	env:      func(*S3) []string { return []string{"RCLONE_CONFIG=/dev/null"} },
	mkBucket: true,
}

// SeaweedFS (Apache-2.0) as `weed server -s3`: master, volume server,
// filer and S3 gateway in one process, each on a port of its own (S3.ports:
// master, volume, filer and S3 gateway, then their gRPC ports, set
// explicitly: the default, HTTP port + 10000, may be taken or out of
// range). The credentials are an identity of its -s3.config file, so that
// it verifies signatures. Its module's go.mod has replace directives, so it
// is built in a throwaway module (toolBinary). Only `make test-s3-servers`
// runs it.
var seaweedFSServer = s3Server{
	name: "seaweedfs", pkg: "github.com/seaweedfs/seaweedfs/weed", version: "v0.0.0-20261109003541-7506e5f91cd6",
	module: "github.com/seaweedfs/seaweedfs",
	server: "SeaweedFS", ready: "/",
	ports: 7,
	setup: func(s *S3) {
		conf, err := json.Marshal(map[string]any{"identities": []any{map[string]any{
			"name":        s.AccessKey,
			"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
			"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
		}}})
		if err == nil {
			err = os.WriteFile(filepath.Join(s.etc, "s3.json"), conf, 0o600)
		}
		if err != nil {
			s.t.Fatalf("testserver: writing the SeaweedFS S3 config: %v", err)
		}
		// The Unix sockets of its gRPC ports are always in /tmp; the
		// master's stays when Stop has to kill it.
		s.t.Cleanup(func() {
			for i, c := range []string{"master", "volume", "filer", "s3"} {
				os.Remove("/tmp/seaweedfs-" + c + "-grpc-" + s.port(3+i) + ".sock")
			}
		})
	},
	// Its S3 gateway answers before its master has a leader and a volume
	// server (a restarted master waits out -master.electionTimeout), and
	// PUTs hang until then: it is writable once the master's topology lists
	// a volume server.
	writable: func(s *S3, c *http.Client) (bool, error) {
		resp, err := c.Get("http://" + s.ports[0] + "/dir/status")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var st struct {
			Topology struct {
				DataCenters []struct {
					Racks []struct{ DataNodes []json.RawMessage }
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, fmt.Errorf("master /dir/status: %s, %w", resp.Status, err)
		}
		for _, dc := range st.Topology.DataCenters {
			for _, r := range dc.Racks {
				if len(r.DataNodes) > 0 {
					return true, nil
				}
			}
		}
		return false, errors.New("no volume server has joined its master")
	},
	args: func(s *S3) []string {
		p := s.port
		// Its log goes to stderr (S3.log) and to files in -logdir, by default /tmp.
		return []string{"-logdir=" + s.etc, "server", "-dir=" + s.Dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-master.port=" + p(0), "-volume.port=" + p(1), "-filer.port=" + p(2),
			"-master.port.grpc=" + p(3), "-volume.port.grpc=" + p(4), "-filer.port.grpc=" + p(5),
			"-s3", "-s3.port=" + p(-1), "-s3.port.grpc=" + p(6),
			"-s3.port.iceberg=0", "-s3.port.lance=0",
			"-s3.config=" + filepath.Join(s.etc, "s3.json"),
			// Unix sockets it would otherwise leave in /tmp (its gRPC ones are fixed there).
			"-filer.localSocket=" + filepath.Join(s.etc, "filer.sock"), "-s3.localSocket=" + filepath.Join(s.etc, "s3.sock"),
			// Small volumes, and no 10 s pause before it stops. It still takes
			// 15 s to exit on SIGTERM (its filer flushes its metadata log after
			// the volume server has stopped, until a timeout), so Stop kills it
			// after its grace; the data is on disk by then.
			"-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
			// A single master elects itself after this; the default is 10 s.
			"-master.electionTimeout=1s"}
	},
	env:        func(*S3) []string { return nil },
	bucketCORS: true,
}

// s3Servers are the servers a test can ask for by name.
var s3Servers = map[string]*s3Server{"versitygw": &versityGWServer, "minio": &minIOServer, "rclone": &rcloneServer, "seaweedfs": &seaweedFSServer}

// defaultS3Servers are those EachS3 runs a test against unless
// $MEDIASLOT_S3_SERVERS names others (comma-separated): the two that
// `make test` builds.
const defaultS3Servers = "versitygw,minio"

const (
	s3Start = 20 * time.Second // until the port answers as the server
	s3Stop  = 5 * time.Second  // SIGTERM grace period before SIGKILL
)

// S3 is a running private S3 server with one empty bucket.
type S3 struct {
	Name      string // "versitygw", "minio", "rclone", "seaweedfs"
	Endpoint  string // "http://127.0.0.1:port"; path-style addressing
	Region    string // "us-east-1"; requests signed for another region fail
	Bucket    string
	AccessKey string // the server's root account
	SecretKey string
	// Dir is the data directory. For versitygw, the root of its posix
	// backend: Dir/<Bucket>/<key> are the objects. MinIO keeps its own
	// layout there.
	Dir string
	// BucketCORS: the server implements PutBucketCors; MinIO and rclone
	// answer 501 (their CORS is server-wide).
	BucketCORS bool
	// ChecksRegion: the server refuses requests signed for another
	// region (rclone and SeaweedFS accept any).
	ChecksRegion bool

	t    testing.TB
	srv  *s3Server
	bin  string // the cached binary
	log  string // stdout and stderr of the server (outside Dir: files there would be buckets)
	mu   sync.Mutex
	proc *process // nil while stopped
	made bool     // the bucket exists

	ports []string // srv.ports more loopback addresses of the server
	etc   string   // srv.setup's files (short: Unix sockets live there too)
}

// VersityGW starts a private versitygw on a free loopback port with a fresh
// t.TempDir() as its data directory and stops it in t.Cleanup. The binary
// is built once into $MEDIASLOT_TOOLS_DIR, by default <module root>/bin/tools
// (scripts/gotool.sh shares it). If it is missing and cannot be built (no
// go, no module proxy), the test is skipped, or fails when integration tests
// are required.
func VersityGW(t testing.TB) *S3 { return startS3(t, &versityGWServer) }

// MinIO starts a private MinIO server as VersityGW starts versitygw.
func MinIO(t testing.TB) *S3 { return startS3(t, &minIOServer) }

// EachS3 runs f as a subtest, named after the server, against a private
// instance of each S3 server of the suites.
func EachS3(t *testing.T, f func(t *testing.T, s *S3)) {
	t.Helper()
	for _, srv := range S3Servers(t) {
		t.Run(srv.Name, func(t *testing.T) { f(t, srv.Start(t)) })
	}
}

// S3Server is one of the S3 servers of the suites: its name, and how to
// start a private instance of it.
type S3Server struct {
	Name  string
	Start func(testing.TB) *S3
}

// S3Servers lists the S3 servers of the suites ($MEDIASLOT_S3_SERVERS or
// versitygw and MinIO), for tables of cases that EachS3 does not fit.
func S3Servers(t testing.TB) []S3Server {
	t.Helper()
	var out []S3Server
	for name := range strings.SplitSeq(cmp.Or(os.Getenv("MEDIASLOT_S3_SERVERS"), defaultS3Servers), ",") {
		srv, ok := s3Servers[strings.TrimSpace(name)]
		if !ok {
			t.Fatalf("testserver: MEDIASLOT_S3_SERVERS names %q; known are versitygw, minio, rclone and seaweedfs", name)
		}
		out = append(out, S3Server{srv.name, func(t testing.TB) *S3 { return startS3(t, srv) }})
	}
	return out
}

func startS3(t testing.TB, srv *s3Server) *S3 {
	t.Helper()
	bin := toolBinary(t, srv)
	ports := FreePorts(t, 1+srv.ports)
	addr := ports[0]
	s := &S3{
		Name:         srv.name,
		Endpoint:     "http://" + addr,
		Region:       "us-east-1",
		Bucket:       "mediaslot-test",
		AccessKey:    "mediaslot",
		SecretKey:    randomHex(t, 16),
		Dir:          t.TempDir(),
		BucketCORS:   srv.bucketCORS,
		ChecksRegion: srv.checksRegion,
		t:            t,
		srv:          srv,
		bin:          bin,
		ports:        ports[1:],
		log:          filepath.Join(t.TempDir(), srv.name+".log"),
	}
	if srv.setup != nil {
		// Not t.TempDir(): a Unix socket's path must stay under 108 bytes.
		etc, err := os.MkdirTemp("", srv.name+"-")
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		s.etc = etc
		srv.setup(s)
	}
	if srv.mkBucket {
		// A directory in the posix root is a bucket; that saves a signed CreateBucket.
		if err := os.Mkdir(filepath.Join(s.Dir, s.Bucket), 0o755); err != nil {
			t.Fatalf("testserver: %v", err)
		}
		s.made = true
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

// StoreConfig is mediaslot's [store] and [store.s3] sections for s, with
// download the store.s3.download mode ("redirect", "proxy" or "public").
func (s *S3) StoreConfig(download string) string {
	return fmt.Sprintf(`[store]
type = "s3"

[store.s3]
endpoint = %q
region = %q
bucket = %q
path_style = true
access_key_id = %q
secret_access_key = %q
download = %q
cors_origins = ["*"]
`, s.Endpoint, s.Region, s.Bucket, s.AccessKey, s.SecretKey, download)
}

// LogPath is the file with the server's stdout and stderr.
func (s *S3) LogPath() string { return s.log }

func (s *S3) addr() string { return strings.TrimPrefix(s.Endpoint, "http://") }

// port returns the port number of s.ports[i], or of the S3 port for -1.
func (s *S3) port(i int) string {
	addr := s.addr()
	if i >= 0 {
		addr = s.ports[i]
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// Start starts the server (again, after Stop): same port, data directory,
// bucket and credentials, so objects stored before are served again. It
// fails the test if the server is running or does not come up.
func (s *S3) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.t.Fatalf("testserver: Start: %s already running (pid %d)", s.Name, s.proc.pid())
	}
	cmd := exec.Command(s.bin, s.srv.args(s)...)
	cmd.Env = append(s3Env(), s.srv.env(s)...)
	p, err := startProcess(cmd, s.log)
	if err != nil {
		s.t.Fatalf("testserver: starting %s: %v", s.Name, err)
	}
	s.proc = p
	if err := s.waitReady(); err != nil {
		s.stopLocked()
		s.t.Fatalf("testserver: %v", err) // startS3's cleanup logs the tail
	}
	if !s.made {
		if err := s.createBucket(); err != nil {
			s.stopLocked()
			s.t.Fatalf("testserver: creating bucket %s on %s: %v", s.Bucket, s.Name, err)
		}
		s.made = true
	}
}

// Restart stops and starts the server again (same port, data and credentials).
func (s *S3) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Client returns an S3 client with the root account's credentials, for
// tests that look at the bucket directly.
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// createBucket creates the bucket, waiting while the server answers 503:
// MinIO reports ready before it has initialised its object layer.
func (s *S3) createBucket() error {
	return s.proc.waitFor(s.Name, time.Now().Add(s3Start), func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusServiceUnavailable {
			return false, err
		}
		return true, err
	})
}

// s3Env is the environment without the variables the servers read their
// settings from, so that the caller's cannot leak in.
func s3Env() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VGW_") && !strings.HasPrefix(e, "ROOT_") && !strings.HasPrefix(e, "MINIO_") &&
			!strings.HasPrefix(e, "WEED_") && !strings.HasPrefix(e, "AWS_") {
			env = append(env, e)
		}
	}
	return env
}

// waitReady waits until the ready path answers with the server's Server
// header (any status: versitygw answers anonymous requests with 403).
// Checking the header, not just a connect, catches another process that
// took the port after freePorts.
func (s *S3) waitReady() error {
	client := &http.Client{Timeout: 250 * time.Millisecond}
	return s.proc.waitFor(s.Name, time.Now().Add(s3Start), func() (bool, error) {
		resp, err := client.Get(s.Endpoint + s.srv.ready)
		if err != nil {
			return false, fmt.Errorf("%s did not answer on %s within %v: %v", s.Name, s.Endpoint, s3Start, err)
		}
		resp.Body.Close()
		if server := resp.Header.Get("Server"); !strings.HasPrefix(server, s.srv.server) {
			return true, fmt.Errorf("%s is answered by %q, not %s", s.Endpoint, server, s.Name)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			return false, fmt.Errorf("%s on %s not ready within %v", s.Name, s.Endpoint, s3Start)
		}
		if s.srv.writable != nil {
			if ok, err := s.srv.writable(s, client); !ok {
				return false, fmt.Errorf("%s on %s cannot store objects within %v: %v", s.Name, s.Endpoint, s3Start, err)
			}
		}
		return true, nil
	})
}

// Stop stops the server: SIGTERM, up to 5 s grace, then SIGKILL. It is a
// no-op if it is not running; the objects stay in Dir.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *S3) stopLocked() {
	s.proc.stop(s.t, s.Name, s3Stop)
	s.proc = nil
}

// toolsDir is where the harness caches what it builds once (server
// binaries, the PostgreSQL template): $MEDIASLOT_TOOLS_DIR, by default
// <module root>/bin/tools, which scripts/gotool.sh shares.
func toolsDir(t testing.TB) string {
	if dir := os.Getenv("MEDIASLOT_TOOLS_DIR"); dir != "" {
		return dir
	}
	return filepath.Join(ModuleRoot(t), "bin", "tools")
}

// toolBinary returns the cached binary of srv, building it first with go
// install pkg@version (or, for a module of replace directives, go build in
// a throwaway module: buildInModule) if it is missing. A lock file
// serialises builders: go test runs the packages of ./... in parallel, and a
// cold build takes minutes on two cores.
func toolBinary(t testing.TB, srv *s3Server) string {
	t.Helper()
	name, pkg, version := srv.name, srv.pkg, srv.version
	dir := toolsDir(t)
	bin := filepath.Join(dir, name)
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
	unlock, err := lockFile(filepath.Join(dir, "."+name+".lock"))
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
	t.Logf("testserver: building %s %s into %s (minutes with a cold build cache; scripts/gotool.sh %s builds it ahead)", name, version, dir, name)
	start := time.Now()
	if srv.module != "" {
		if out, err := buildInModule(goTool, tmp, srv); err != nil {
			skipOrFail(t, "testserver: building %s: %v\n%s", name, err, out)
		}
	} else {
		cmd := exec.Command(goTool, "install", pkg+"@"+version)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			skipOrFail(t, "testserver: building %s: %v\n%s", name, err, out)
		}
	}
	if err := os.Rename(filepath.Join(tmp, name), bin); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Logf("testserver: built %s in %v", name, time.Since(start).Round(time.Second))
	return bin
}

// buildInModule builds srv.pkg into dir/srv.name from a throwaway module
// in dir that requires srv.module at srv.version: replace directives, which
// go install refuses, are ignored in a dependency. The tools.go file keeps
// the import that go mod tidy needs. scripts/gotool.sh does the same.
func buildInModule(goTool, dir string, srv *s3Server) ([]byte, error) {
	files := map[string]string{
		"go.mod":   "module build\n",
		"tools.go": "//go:build tools\n\npackage build\n\nimport _ \"" + srv.pkg + "\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	var out []byte
	for _, args := range [][]string{
		{"get", srv.module + "@" + srv.version},
		{"mod", "tidy"},
		{"build", "-o", srv.name, srv.pkg},
	} {
		cmd := exec.Command(goTool, args...)
		cmd.Dir = dir
		o, err := cmd.CombinedOutput()
		out = append(out, o...)
		if err != nil {
			return out, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
	}
	return out, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
