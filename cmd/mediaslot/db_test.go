package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/testserver"
)

// dbConfig writes a configuration whose data.dir is dir/data (made) and
// whose XMPP server is a port nobody listens on.
func dbConfig(t *testing.T, dir string) (cfg, db string) {
	t.Helper()
	ports := testserver.FreePorts(t, 2)
	cfg = filepath.Join(dir, "m.toml")
	conf := fmt.Sprintf("[component]\njid = \"upload.example.net\"\nserver = %q\nsecret = \"s\"\n[http]\nlisten = %q\npublic_url = \"http://%s\"\n[store]\ndir = \"files\"\n[data]\ndir = \"data\"\n",
		ports[0], ports[1], ports[1])
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	return cfg, filepath.Join(dir, "data", "mediaslot.db")
}

// serveChild runs `mediaslot serve --config cfg` as a child process (the
// test binary, see TestMain), so that a crash ends the child, not the test.
// A serve that starts (on a damaged file) is stopped and reported.
func serveChild(t *testing.T, cfg string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "MEDIASLOT_TEST_AS_MAIN=1")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "mediaslot serving") {
			t.Errorf("serve started:\n%s", b.String())
			cancel()
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), b.String()
}

// serve refuses a damaged, empty or locked database file with one clear
// line that names the file and what to do, and does not crash; it leaves
// the file as it was. (bbolt alone: SIGBUS on the truncated file, a failed
// assertion's panic on the scribbled one, a new empty database in the empty
// file, and the hint of a lock for all.)
func TestServeRefusesDamagedDatabase(t *testing.T) {
	damaged := []string{" is damaged: ", "restore the file from a backup", "move it aside", "mediaslot db check"}
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, db string)
		want   []string
	}{
		{"truncated", func(t *testing.T, db string) { dbfiletest.Truncate(t, db) }, append(damaged, "it was cut short")},
		{"scribbled", func(t *testing.T, db string) { dbfiletest.Scribble(t, db) }, damaged},
		{"empty", func(t *testing.T, db string) { _ = os.Truncate(db, 0) }, append(damaged, "it is empty (0 bytes)")},
		{"locked", func(t *testing.T, db string) {
			holder, err := bolt.Open(db, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { holder.Close() })
		}, []string{" is locked by another process: is another mediaslot using it?"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, db := dbConfig(t, t.TempDir())
			dbfiletest.Sound(t, db, 3000)
			c.damage(t, db)
			before, _ := os.ReadFile(db)
			code, stderr := serveChild(t, cfg)
			if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "mediaslot serve: "+db) {
				t.Errorf("want exit 1 and one line of error, got %d:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error lacks %q:\n%s", w, stderr)
				}
			}
			if c.name != "locked" && strings.Contains(stderr, "another mediaslot") {
				t.Errorf("the hint of a lock on a damaged file:\n%s", stderr)
			}
			if after, _ := os.ReadFile(db); string(after) != string(before) {
				t.Errorf("serve changed the file: %d bytes before, %d after", len(before), len(after))
			}
		})
	}
}

// `mediaslot db check` reports a sound file as sound and lists the damage
// of a damaged one, by --config or --db.
func TestDBCheck(t *testing.T) {
	cfg, db := dbConfig(t, t.TempDir())
	dbfiletest.Sound(t, db, 100)
	var out testserver.LogBuffer
	if code := run(context.Background(), []string{"db", "check", "--config", cfg}, &out, &out); code != 0 ||
		!strings.Contains(out.String(), db+" is sound: ") || !strings.Contains(out.String(), "2 buckets and 200 keys read") {
		t.Errorf("sound file: exit %d\n%s", code, out.String())
	}
	dbfiletest.Truncate(t, db)
	out = testserver.LogBuffer{}
	if code := run(context.Background(), []string{"db", "check", "--db", db}, &out, &out); code != 1 ||
		!strings.Contains(out.String(), db+" is DAMAGED:\n  - it has ") || !strings.Contains(out.String(), "Restore the file from a backup") {
		t.Errorf("truncated file: exit %d\n%s", code, out.String())
	}
	out = testserver.LogBuffer{}
	if code := run(context.Background(), []string{"db", "vacuum"}, &out, &out); code != 2 || !strings.Contains(out.String(), "usage: mediaslot db check") {
		t.Errorf("unknown db command: exit %d\n%s", code, out.String())
	}
}
