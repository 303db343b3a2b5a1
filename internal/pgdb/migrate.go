// Package pgdb opens mediaslot's PostgreSQL database: a pgx pool whose
// schema is brought up to date at start by the versioned migrations in
// migrations/ (embedded in the binary), and the probes of --check-config.
//
// The schema version table, mediaslot_schema_version, has one row per
// applied migration. Migrations run in one transaction under a
// transaction-scoped advisory lock: instances that start at once wait for
// each other, and the first applies what is pending while the others find
// nothing left to do. A database that has a migration this binary does not
// know (written by a newer mediaslot) is refused, since the older code
// would misread it.
package pgdb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations
var migrationFiles embed.FS

// migrationLock is the key of the advisory lock migrations run under (the
// bytes of "mslot"); it only has to differ from the keys of other programs
// that share the database.
const migrationLock int64 = 0x6d736c6f74

// versionTable records the applied migrations.
const versionTable = "mediaslot_schema_version"

// migration is one file of migrations/.
type migration struct {
	version int
	name    string // the file name
	sql     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// loadMigrations reads migrations/ in version order. A .sql file whose name
// is not NNNN_name.sql, or a version used twice, is an error: a typo would
// otherwise silently skip a migration.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		if path.Ext(e.Name()) != ".sql" {
			continue // README.md
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("pgdb: migration %s: the name must be NNNN_name.sql (lower case)", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("pgdb: migration %s: versions start at 0001", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("pgdb: migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// embedded are the binary's migrations, loaded once.
var embedded = sync.OnceValues(func() ([]migration, error) { return loadMigrations(migrationFiles) })

// LatestVersion is the schema version this binary migrates to (the highest
// migration it has; 0 when it has none).
func LatestVersion() int {
	ms, err := embedded()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Open connects a pool to dsn (a postgres:// URL or key=value pairs, as
// pgx takes them, including pgxpool's pool_max_conns and the like) and
// migrates the schema. Its errors are *ProbeError, with
// what to fix, like Check's.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	ms, err := embedded()
	if err != nil {
		return nil, err
	}
	return open(ctx, dsn, ms)
}

// open is Open with the migrations ms.
func open(ctx context.Context, dsn string, ms []migration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, dsnError(err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, dsnError(err)
	}
	if err := migratePool(ctx, pool, ms); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// migratePool applies the pending migrations in one transaction.
func migratePool(ctx context.Context, pool *pgxpool.Pool, ms []migration) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return connectError(pool.Config().ConnConfig, err)
	}
	defer conn.Release()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, _, err := migrate(ctx, tx, ms)
		return err
	})
	if err != nil {
		return migrateError(pool.Config().ConnConfig, err)
	}
	return nil
}

// SchemaError is a database whose schema this binary cannot use: one with
// migrations it does not know (written by a newer mediaslot).
type SchemaError struct {
	Version int   // the highest version in the database
	Latest  int   // the highest this binary knows
	Unknown []int // versions applied that this binary has no file for
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("pgdb: the database's schema is at version %d but this mediaslot knows versions up to %d (unknown: %v): "+
		"it was migrated by a newer mediaslot; run that version (or newer), or point data.dsn at another database",
		e.Version, e.Latest, e.Unknown)
}

// migrate takes the advisory lock, creates the version table if missing,
// refuses unknown versions and applies the pending migrations in tx. It
// returns the version the database had and how many migrations it applied.
func migrate(ctx context.Context, tx pgx.Tx, ms []migration) (version, applied int, err error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return 0, 0, fmt.Errorf("pgdb: taking the migration lock: %w", err)
	}
	// Looked up before creating: CREATE TABLE IF NOT EXISTS needs the
	// privilege to create even when the table is there, and a role that
	// may only use the tables must be able to start on a current schema.
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
		return 0, 0, fmt.Errorf("pgdb: looking up %s: %w", versionTable, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+versionTable+` (
			version integer PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return 0, 0, fmt.Errorf("pgdb: creating %s: %w", versionTable, err)
		}
	}
	rows, _ := tx.Query(ctx, "SELECT version FROM "+versionTable+" ORDER BY version")
	done, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return 0, 0, fmt.Errorf("pgdb: reading %s: %w", versionTable, err)
	}
	if len(done) > 0 {
		version = done[len(done)-1]
	}
	if err := checkKnown(done, ms); err != nil {
		return version, 0, err
	}
	for _, m := range ms {
		if slices.Contains(done, m.version) {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return version, applied, fmt.Errorf("pgdb: migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return version, applied, fmt.Errorf("pgdb: recording migration %s: %w", m.name, err)
		}
		applied++
	}
	return version, applied, nil
}

// checkKnown returns a *SchemaError if done holds versions ms lacks.
func checkKnown(done []int, ms []migration) error {
	e := &SchemaError{}
	if len(ms) > 0 {
		e.Latest = ms[len(ms)-1].version
	}
	for _, v := range done {
		if !slices.ContainsFunc(ms, func(m migration) bool { return m.version == v }) {
			e.Unknown = append(e.Unknown, v)
		}
		e.Version = max(e.Version, v)
	}
	if len(e.Unknown) > 0 {
		return e
	}
	return nil
}
