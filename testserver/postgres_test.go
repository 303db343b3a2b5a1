package testserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The private cluster: logins need the password, NewDB gives separate
// databases, a committed row survives Stop and Start (same port, same
// data), a SIGKILLed server counts as stopped and comes back, and Cleanup
// removes the directory.
func TestPostgres(t *testing.T) {
	var dir string
	t.Run("cluster", func(t *testing.T) {
		pg := StartPostgres(t)
		dir = pg.Dir
		ctx := t.Context()

		if _, err := pgx.Connect(ctx, pg.DSNAs(pg.User, "wrong", "postgres")); err == nil {
			t.Error("a wrong password was accepted")
		}
		a, b := pg.NewDB(t), pg.NewDB(t)
		if a == b {
			t.Fatalf("NewDB twice gave %s", a)
		}
		exec := func(dsn, sql string) error {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			_, err = c.Exec(ctx, sql)
			return err
		}
		if err := exec(a, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
			t.Fatal(err)
		}
		if err := exec(b, "SELECT * FROM t"); err == nil {
			t.Error("the second database sees the first one's table")
		}

		pid := pg.PID()
		if pid == 0 {
			t.Fatal("PID 0 of a running cluster")
		}
		pg.Stop(t)
		if pg.PID() != 0 {
			t.Error("PID of a stopped cluster")
		}
		if err := exec(a, "SELECT 1"); err == nil {
			t.Error("a stopped cluster answers")
		}
		pg.Start(t)
		if pg.PID() == 0 || pg.PID() == pid {
			t.Errorf("PID after a restart: %d (before %d)", pg.PID(), pid)
		}
		if err := syscall.Kill(pg.PID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, 10*time.Second, "the killed server to be reaped", func() bool { return pg.PID() == 0 })
		// Its backends notice that the postmaster died and leave; until
		// then the new one refuses to start on their shared memory.
		WaitFor(t, 30*time.Second, "the restart after SIGKILL", func() bool { return pg.start() == nil })

		c, err := pgx.Connect(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		var v int
		if err := c.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
			t.Errorf("after the restarts: %d, %v", v, err)
		}
		var fsync string
		if err := c.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
			t.Errorf("fsync = %q, %v", fsync, err)
		}
	})
	if _, err := os.Stat(dir); dir != "" && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's directory %s is left: %v", dir, err)
	}
}

// The first cluster caches its fresh data directory in the tools
// directory; the next starts from a copy of it, with a password of its
// own.
func TestPostgresTemplate(t *testing.T) {
	tools := t.TempDir()
	t.Setenv("MEDIASLOT_TOOLS_DIR", tools)
	first := StartPostgres(t)
	templates, _ := filepath.Glob(filepath.Join(tools, "postgres-template-*", "PG_VERSION"))
	if len(templates) != 1 {
		t.Fatalf("templates cached: %v", templates)
	}
	second := StartPostgres(t)
	ctx := t.Context()
	if c, err := pgx.Connect(ctx, second.DSNAs(second.User, first.Password, "postgres")); err == nil {
		c.Close(ctx)
		t.Error("the first cluster's password logs in to the second")
	}
	c, err := pgx.Connect(ctx, second.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
}
