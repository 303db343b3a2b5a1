package testserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster (StartPostgres): its own data
// directory in a temporary directory, listening on a free loopback port and
// on a unix socket in that directory, with fsync on (tests of durability
// need it) and small memory settings.
//
// The superuser is User with Password; TCP logins (127.0.0.1) need the
// password (scram-sha-256, so tests can check that a wrong one is refused),
// logins on the unix socket are trusted.
type Postgres struct {
	Dir      string // the cluster's directory: data/, the socket, postgres.log
	Addr     string // "127.0.0.1:port", the same across Stop and Start
	User     string // the superuser ("postgres")
	Password string // the superuser's password

	bin   string // the directory of initdb and postgres
	owner *user.User
	t     testing.TB

	mu   sync.Mutex
	proc *process // nil while stopped
	dbs  int      // databases made by NewDB, for their names
}

const (
	pgStartTimeout = 60 * time.Second // initdb's recovery-free start is seconds; generous for a loaded CI machine
	pgStopTimeout  = 10 * time.Second
	pgSuperuser    = "postgres"
	pgOSUser       = "postgres" // the account the server runs as when the tests run as root
)

// PostgresBinDir returns the directory that holds PostgreSQL's initdb and
// postgres: pg_config --bindir if that has them, else the newest
// /usr/lib/postgresql/N/bin (Debian's layout, where the server binaries are
// not on PATH), else the directory of initdb on PATH.
func PostgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: numeric order, "9.6" < "15".
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return int(version(b)*100 - version(a)*100) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres): not in pg_config --bindir, /usr/lib/postgresql/*/bin or PATH; install the Debian package postgresql")
}

// StartPostgres creates and starts a private cluster for the test (one per
// call; NewDB gives each subtest its own database in it) and removes it in
// t.Cleanup. Missing binaries skip the test, or fail it under CI=true or
// MEDIASLOT_REQUIRE_INTEGRATION=1. When the tests run as root the cluster
// belongs to, and runs as, the postgres user.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := PostgresBinDir()
	if err != nil {
		skipOrFail(t, "testserver: %v", err)
	}
	p := &Postgres{User: pgSuperuser, Password: randomHex(t, 12), bin: bin, t: t}
	if os.Geteuid() == 0 {
		if p.owner, err = user.Lookup(pgOSUser); err != nil {
			skipOrFail(t, "testserver: running as root, PostgreSQL needs the %q user: %v", pgOSUser, err)
		}
	}

	// Not t.TempDir: its parent is private to the test's user, so the
	// postgres user could not reach the cluster in it.
	p.Dir, err = os.MkdirTemp("", "mediaslot-pg-")
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Cleanup(func() {
		// Immediate shutdown: the data is removed next, so the shutdown
		// checkpoint's writes and fsyncs would be wasted.
		p.mu.Lock()
		p.proc.stopWith(t, "postgres", syscall.SIGQUIT, pgStopTimeout)
		p.proc = nil
		p.mu.Unlock()
		if t.Failed() {
			logTails(t, p.logPath())
		}
		if err := os.RemoveAll(p.Dir); err != nil {
			t.Errorf("testserver: removing the cluster: %v", err)
		}
	})
	if err := p.chown(p.Dir); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if err := p.initdb(t); err != nil {
		t.Fatalf("testserver: %v", err)
	}

	// A port taken between FreePorts and the bind makes the server exit;
	// then try another.
	for attempt := 1; ; attempt++ {
		p.Addr = FreePorts(t, 1)[0]
		err := p.start()
		if err == nil {
			// The template has no password: set this cluster's own.
			p.exec(t, "postgres", true, "ALTER ROLE "+p.User+" PASSWORD '"+p.Password+"'")
			return p
		}
		if attempt == 3 || !strings.Contains(readFrom(p.logPath(), 0), "could not bind") {
			logTails(t, p.logPath())
			t.Fatalf("testserver: %v", err)
		}
	}
}

// pgTemplateFormat changes when the initdb options below do, so that
// caches of the old ones are not used.
const pgTemplateFormat = "1"

// initdb makes the cluster's data directory: a copy of a template cached
// in the tools directory (see toolsDir) when there is one for these
// binaries, else initdb's output, which then becomes the template. A copy
// (cp -a, keeping owners and modes) takes a fraction of initdb's second or
// two. The template has no password; StartPostgres sets the cluster's own.
func (p *Postgres) initdb(t testing.TB) error {
	version, err := exec.Command(filepath.Join(p.bin, "postgres"), "--version").Output()
	if err != nil {
		return fmt.Errorf("postgres --version: %v", err)
	}
	sum := sha256.Sum256([]byte(p.bin + "\n" + string(version) + pgTemplateFormat))
	cache := toolsDir(t)
	tmpl := filepath.Join(cache, "postgres-template-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(tmpl, "PG_VERSION")); err == nil {
		return p.copyDir(tmpl, p.dataDir())
	}
	// --no-sync: a crash of the machine during the test loses the test
	// anyway; the server itself runs with fsync on.
	cmd := exec.Command(filepath.Join(p.bin, "initdb"), "-D", p.dataDir(), "-U", p.User,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = p.Dir
	if err := p.asOwner(cmd); err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// Cached under a lock, through a temporary copy renamed into place:
	// test binaries of other packages start clusters at the same time. A
	// cache that cannot be written only costs time.
	if err := func() error {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return err
		}
		unlock, err := lockFile(filepath.Join(cache, ".postgres-template.lock"))
		if err != nil {
			return err
		}
		defer unlock()
		if _, err := os.Stat(filepath.Join(tmpl, "PG_VERSION")); err == nil {
			return nil
		}
		tmp, err := os.MkdirTemp(cache, ".postgres-template-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := p.copyDir(p.dataDir(), filepath.Join(tmp, "data")); err != nil {
			return err
		}
		return os.Rename(filepath.Join(tmp, "data"), tmpl)
	}(); err != nil {
		t.Logf("testserver: not caching the PostgreSQL template in %s: %v", cache, err)
	}
	return nil
}

// copyDir copies the directory src to dst with its modes, owned by the
// postgres user when the tests run as root: a template copied along with
// bin/tools by root (cp -r) would otherwise leave the server unable to
// read its own files.
func (p *Postgres) copyDir(src, dst string) error {
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v\n%s", src, err, out)
	}
	if p.owner == nil {
		return nil
	}
	if out, err := exec.Command("chown", "-R", p.owner.Uid+":"+p.owner.Gid, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s: %v\n%s", dst, err, out)
	}
	return nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Dir, "data") }
func (p *Postgres) logPath() string { return filepath.Join(p.Dir, "postgres.log") }

// chown gives path to the postgres user when the tests run as root.
func (p *Postgres) chown(path string) error {
	if p.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(p.owner.Uid)
	gid, _ := strconv.Atoi(p.owner.Gid)
	return os.Chown(path, uid, gid)
}

// asOwner makes cmd run as the postgres user when the tests run as root.
func (p *Postgres) asOwner(cmd *exec.Cmd) error {
	if p.owner == nil {
		return nil
	}
	uid, _ := strconv.ParseUint(p.owner.Uid, 10, 32)
	gid, _ := strconv.ParseUint(p.owner.Gid, 10, 32)
	return runAs(cmd, uint32(uid), uint32(gid))
}

// Start starts the stopped cluster again, with the same data and port, and
// waits until it accepts logins. It fails the test if the server is already
// running or does not come up. A server killed by the test (SIGKILL of
// PID()) counts as stopped.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		logTails(t, p.logPath())
		t.Fatalf("testserver: %v", err)
	}
}

func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.proc.exited() {
		return fmt.Errorf("postgres already running (pid %d)", p.proc.pid())
	}
	p.proc = nil
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.dataDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+port(p.Addr),
		"-c", "unix_socket_directories="+p.Dir,
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=100",
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "max_wal_size=256MB",
		"-c", "jit=off",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = p.Dir
	if err := p.asOwner(cmd); err != nil {
		return err
	}
	proc, err := startProcess(cmd, p.logPath())
	if err != nil {
		return fmt.Errorf("starting postgres: %v", err)
	}
	p.proc = proc
	// Listening is not enough: during startup the server answers "the
	// database system is starting up". A login is (on the unix socket,
	// trusted: a fresh cluster has no password yet; TCP listens by then).
	err = proc.waitFor("postgres", time.Now().Add(pgStartTimeout), func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.socketDSN("postgres"))
		if err != nil {
			return false, fmt.Errorf("postgres did not accept a login on %s within %v: %v", p.Addr, pgStartTimeout, err)
		}
		c.Close(ctx)
		return true, nil
	})
	if err != nil {
		p.proc.stopWith(p.t, "postgres", syscall.SIGINT, pgStopTimeout)
		p.proc = nil
	}
	return err
}

// Stop stops the server (fast shutdown: open connections are ended, the
// data is checkpointed), SIGKILL after 10 s. It is a no-op if the server is
// not running. The data stays for Start.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc.stopWith(t, "postgres", syscall.SIGINT, pgStopTimeout)
	p.proc = nil
}

// PID returns the process id of the running postmaster, or 0.
func (p *Postgres) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc.exited() {
		return 0
	}
	return p.proc.pid()
}

// DSN returns the URL of database dbname for the superuser over TCP.
func (p *Postgres) DSN(dbname string) string {
	return p.DSNAs(p.User, p.Password, dbname)
}

// DSNAs returns the URL of database dbname for user with password over TCP.
func (p *Postgres) DSNAs(user, password, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     p.Addr,
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// socketDSN is the superuser's DSN of dbname on the unix socket in Dir,
// where logins are trusted.
func (p *Postgres) socketDSN(dbname string) string {
	return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", p.Dir, port(p.Addr), p.User, dbname)
}

// NewDB creates a fresh empty database, owned by the superuser, and returns
// its DSN (DSN). Databases live as long as the cluster.
func (p *Postgres) NewDB(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	p.dbs++
	name := fmt.Sprintf("test%d", p.dbs)
	p.mu.Unlock()
	p.Exec(t, "postgres", "CREATE DATABASE "+name)
	return p.DSN(name)
}

// Exec runs sql as the superuser in database dbname (to create roles,
// revoke privileges, ...), failing the test on an error.
func (p *Postgres) Exec(t testing.TB, dbname, sql string, args ...any) {
	t.Helper()
	p.exec(t, dbname, false, sql, args...)
}

// exec is Exec over TCP, or over the unix socket, which needs no password.
func (p *Postgres) exec(t testing.TB, dbname string, socket bool, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := p.DSN(dbname)
	if socket {
		dsn = p.socketDSN(dbname)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("testserver: connecting to %s: %v", dbname, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("testserver: %s: %v", sql, err)
	}
}
