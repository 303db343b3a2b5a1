package pgdb

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// Every probe of Check, against a real cluster: each failure names its
// probe and says what to fix, a good database passes and Check changes
// nothing in it.
func TestCheck(t *testing.T) {
	pg := testserver.StartPostgres(t)
	ms := testMigrations(t, 2)
	ctx := t.Context()

	expect := func(t *testing.T, dsn, probe string, fix ...string) {
		t.Helper()
		_, err := check(ctx, dsn, ms)
		var pe *ProbeError
		if !errors.As(err, &pe) || pe.Probe != probe {
			t.Fatalf("want a %q failure, got %v", probe, err)
		}
		for _, f := range fix {
			if !strings.Contains(pe.Fix, f) {
				t.Errorf("the fix %q does not say %q", pe.Fix, f)
			}
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), pg.Password) {
			t.Errorf("the message shows the password: %v", err)
		}
	}

	t.Run("fresh", func(t *testing.T) {
		dsn := pg.NewDB(t)
		st, err := check(ctx, dsn, ms)
		if err != nil {
			t.Fatal(err)
		}
		if st.Schema != 0 || st.Pending != 2 || !strings.HasPrefix(st.Server, "15") {
			t.Errorf("status %+v", st)
		}
		if got := query(t, dsn, "SELECT count(*) FROM pg_class WHERE relname IN ('t', '"+versionTable+"')"); got != 0 {
			t.Errorf("Check left %d tables behind", got)
		}
		pool, err := open(ctx, dsn, ms)
		if err != nil {
			t.Fatal(err)
		}
		pool.Close()
		if st, err = check(ctx, dsn, ms); err != nil || st.Schema != 2 || st.Pending != 0 {
			t.Errorf("after Open: %+v, %v", st, err)
		}
	})
	t.Run("dsn", func(t *testing.T) {
		expect(t, "postgres://u:s3cret@127.0.0.1:notaport/db", "dsn", "postgres://")
	})
	t.Run("reach", func(t *testing.T) {
		free := testserver.FreePorts(t, 1)[0]
		u, _ := url.Parse(pg.NewDB(t))
		u.Host = free
		_, port, _ := net.SplitHostPort(free)
		expect(t, u.String(), "reach", "127.0.0.1:"+port, "host and port")
	})
	t.Run("password", func(t *testing.T) {
		u, _ := url.Parse(pg.NewDB(t))
		u.User = url.UserPassword(pg.User, "s3cret")
		expect(t, u.String(), "login", "password", `"postgres"`)
	})
	t.Run("database", func(t *testing.T) {
		expect(t, pg.DSN("nosuchdb"), "database", `CREATE DATABASE "nosuchdb"`)
	})
	t.Run("nologin", func(t *testing.T) {
		pg.Exec(t, "postgres", "CREATE ROLE nologin PASSWORD 'pw'")
		expect(t, pg.DSNAs("nologin", "pw", "postgres"), "login", "LOGIN", "pg_hba.conf")
	})
	t.Run("connect", func(t *testing.T) {
		dsn := pg.NewDB(t)
		db := strings.TrimPrefix(must(url.Parse(dsn)).Path, "/")
		pg.Exec(t, "postgres", "CREATE ROLE outsider LOGIN PASSWORD 'pw'")
		pg.Exec(t, "postgres", "REVOKE CONNECT ON DATABASE "+db+" FROM PUBLIC")
		expect(t, pg.DSNAs("outsider", "pw", db), "privileges", "GRANT CONNECT ON DATABASE")
	})
	// PostgreSQL 15 lets no role but the owner create in public.
	t.Run("create", func(t *testing.T) {
		dsn := pg.NewDB(t)
		pg.Exec(t, "postgres", "CREATE ROLE plain LOGIN PASSWORD 'pw'")
		u, _ := url.Parse(dsn)
		expect(t, pg.DSNAs("plain", "pw", strings.TrimPrefix(u.Path, "/")), "privileges", "GRANT USAGE, CREATE ON SCHEMA", "plain")
	})
	// Migrated by its owner, used by a role that may only read.
	t.Run("tables", func(t *testing.T) {
		dsn := pg.NewDB(t)
		pool, err := open(ctx, dsn, ms)
		if err != nil {
			t.Fatal(err)
		}
		pool.Close()
		db := strings.TrimPrefix(must(url.Parse(dsn)).Path, "/")
		pg.Exec(t, "postgres", "CREATE ROLE reader LOGIN PASSWORD 'pw'")
		pg.Exec(t, db, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
		expect(t, pg.DSNAs("reader", "pw", db), "privileges", `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "reader"`, "USAGE ON ALL SEQUENCES")
		pg.Exec(t, db, "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO reader")
		pg.Exec(t, db, "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO reader")
		if _, err := check(ctx, pg.DSNAs("reader", "pw", db), ms); err != nil {
			t.Errorf("with the grants: %v", err)
		}
		// It starts on the schema its owner migrated, without the
		// privilege to create.
		pool, err = open(ctx, pg.DSNAs("reader", "pw", db), ms)
		if err != nil {
			t.Fatalf("Open as a role that may only use the tables: %v", err)
		}
		pool.Close()
	})
	t.Run("newer", func(t *testing.T) {
		dsn := pg.NewDB(t)
		pool, err := open(ctx, dsn, testMigrations(t, 3))
		if err != nil {
			t.Fatal(err)
		}
		pool.Close()
		expect(t, dsn, "schema", "newer one")
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
