package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ProbeError is a failed probe of the database (Check, Open): which one,
// why, and what the operator should do about it.
type ProbeError struct {
	// Probe is what failed: "dsn" (it does not parse), "reach" (no
	// server answers there), "login" (user, password, pg_hba.conf),
	// "database" (it does not exist), "privileges" (the role may not
	// create or use the schema) or "schema" (a version this binary does
	// not know).
	Probe string
	Err   error
	Fix   string
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("postgres %s: %v: %s", e.Probe, e.Err, e.Fix)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// Status is what Check found.
type Status struct {
	Where   string // user@host:port/database
	Server  string // the server's version
	Schema  int    // the schema version in the database (0: none yet)
	Pending int    // migrations this binary would apply at start
}

// connectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout (pgx's default is none): a host that drops packets must
// not hang --check-config, the start, or the pool's reconnections.
const connectTimeout = 10 * time.Second

// Check probes the database at dsn as --check-config does, changing
// nothing: it connects (reachability, authentication, the database), then
// in a transaction it rolls back runs the pending migrations (the role may
// create in the schema) and checks that the role may read and write
// mediaslot's tables, and that the schema is not newer than this binary.
// Each failure is a *ProbeError.
func Check(ctx context.Context, dsn string) (Status, error) {
	ms, err := embedded()
	if err != nil {
		return Status{}, err
	}
	return check(ctx, dsn, ms)
}

// check is Check with the migrations ms.
func check(ctx context.Context, dsn string, ms []migration) (Status, error) {
	var st Status
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return st, dsnError(err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	st.Where = fmt.Sprintf("%s@%s/%s", cfg.User, address(cfg), cfg.Database)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return st, connectError(cfg, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st.Server = conn.PgConn().ParameterStatus("server_version")

	tx, err := conn.Begin(ctx)
	if err != nil {
		return st, connectError(cfg, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// An instance migrating at this moment holds the lock for as long as
	// its migrations take; a check does not wait longer than this.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
		return st, connectError(cfg, err)
	}
	st.Schema, st.Pending, err = migrate(ctx, tx, ms)
	if err != nil {
		return st, migrateError(cfg, err)
	}
	return st, tablePrivileges(ctx, tx, cfg)
}

// tablePrivileges checks that the role may read and write the tables and
// use the sequences of the schema's owner in the version table's schema:
// mediaslot's, when another role migrated them (those of other programs
// sharing the schema belong to other roles). Each privilege is asked
// alone: has_table_privilege is true if any of a list is held.
func tablePrivileges(ctx context.Context, tx pgx.Tx, cfg *pgx.ConnConfig) error {
	rows, _ := tx.Query(ctx, `
		SELECT n.nspname, c.relname FROM pg_class c
		JOIN pg_class v ON v.oid = to_regclass($1) AND c.relnamespace = v.relnamespace AND c.relowner = v.relowner
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE (c.relkind IN ('r', 'p') AND NOT (has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
				AND has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE')))
			OR (c.relkind = 'S' AND NOT has_sequence_privilege(c.oid, 'USAGE'))
		ORDER BY c.relname`, versionTable)
	type rel struct{ Schema, Name string }
	missing, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rel])
	if err != nil {
		return migrateError(cfg, fmt.Errorf("pgdb: reading the privileges: %w", err))
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, len(missing))
	for i, r := range missing {
		names[i] = r.Name
	}
	s := pgx.Identifier{missing[0].Schema}.Sanitize()
	return &ProbeError{Probe: "privileges",
		Err: fmt.Errorf("role %q may not read and write %s", cfg.User, strings.Join(names, ", ")),
		Fix: fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s; GRANT USAGE ON ALL SEQUENCES IN SCHEMA %[1]s TO %[2]s",
			s, pgx.Identifier{cfg.User}.Sanitize())}
}

// dsnError reports a DSN that does not parse. pgx masks the password in
// its message.
func dsnError(err error) error {
	return &ProbeError{Probe: "dsn", Err: err,
		Fix: "write data.dsn as postgres://USER@HOST:PORT/DATABASE?sslmode=... (or key=value pairs), the password apart (data.password_file or MEDIASLOT_DATA_PASSWORD)"}
}

// connectError explains a failed connection: the SQLSTATE of the server's
// refusal, or no server answering.
func connectError(cfg *pgx.ConnConfig, err error) error {
	where := address(cfg)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01": // invalid_password
			return &ProbeError{Probe: "login", Err: err,
				Fix: fmt.Sprintf("PostgreSQL at %s refused the password of user %q: check the user of data.dsn and the password (data.password, data.password_file or MEDIASLOT_DATA_PASSWORD)", where, cfg.User)}
		case "28000": // invalid_authorization_specification: pg_hba.conf, NOLOGIN
			return &ProbeError{Probe: "login", Err: err,
				Fix: fmt.Sprintf("PostgreSQL at %s does not let user %q log in to database %q from here: add a line for it to pg_hba.conf (and reload), and give the role LOGIN", where, cfg.User, cfg.Database)}
		case "42501": // insufficient_privilege: no CONNECT on the database
			return &ProbeError{Probe: "privileges", Err: err,
				Fix: fmt.Sprintf("user %q may not connect to database %q: GRANT CONNECT ON DATABASE %s TO %s",
					cfg.User, cfg.Database, pgx.Identifier{cfg.Database}.Sanitize(), pgx.Identifier{cfg.User}.Sanitize())}
		case "3D000": // invalid_catalog_name
			return &ProbeError{Probe: "database", Err: err,
				Fix: fmt.Sprintf("database %q does not exist at %s: create it (CREATE DATABASE %s OWNER %s) or fix the database name of data.dsn",
					cfg.Database, where, pgx.Identifier{cfg.Database}.Sanitize(), pgx.Identifier{cfg.User}.Sanitize())}
		case "53300", "57P03": // too_many_connections, cannot_connect_now
			return &ProbeError{Probe: "reach", Err: err,
				Fix: fmt.Sprintf("PostgreSQL at %s cannot take the connection now (starting, stopping or full): try again, or raise max_connections", where)}
		}
		return &ProbeError{Probe: "login", Err: err, Fix: fmt.Sprintf("PostgreSQL at %s refused the connection: see its message", where)}
	}
	return &ProbeError{Probe: "reach", Err: err,
		Fix: fmt.Sprintf("no PostgreSQL answered at %s: check the host and port of data.dsn, that the server runs and listens there (listen_addresses, port), and firewalls", where)}
}

// address is where cfg connects: host:port, or a unix socket's directory.
func address(cfg *pgx.ConnConfig) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return cfg.Host
	}
	return net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
}

// migrateError explains a failed migration or privilege query.
func migrateError(cfg *pgx.ConnConfig, err error) error {
	var se *SchemaError
	if errors.As(err, &se) {
		return &ProbeError{Probe: "schema", Err: err,
			Fix: "run the mediaslot that migrated it (or a newer one), or point data.dsn at another database"}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42501": // insufficient_privilege
			return &ProbeError{Probe: "privileges", Err: err,
				Fix: fmt.Sprintf("role %q must be able to create in its schema (GRANT USAGE, CREATE ON SCHEMA public TO %s, or make it the database's owner: PostgreSQL 15 no longer lets every role create in public) and to read and write mediaslot's tables",
					cfg.User, pgx.Identifier{cfg.User}.Sanitize())}
		case "3F000": // invalid_schema_name: no schema to create in
			return &ProbeError{Probe: "privileges", Err: err,
				Fix: fmt.Sprintf("the search_path of role %q names no schema it may use: GRANT USAGE, CREATE ON SCHEMA ... TO %s, or set search_path (options=-csearch_path=SCHEMA in data.dsn)",
					cfg.User, pgx.Identifier{cfg.User}.Sanitize())}
		case "55P03": // lock_not_available
			return &ProbeError{Probe: "schema", Err: err,
				Fix: "another mediaslot is migrating the schema right now: try again when it has started"}
		}
	}
	if pgconn.Timeout(err) || errors.As(err, new(net.Error)) {
		return connectError(cfg, err)
	}
	return err
}
