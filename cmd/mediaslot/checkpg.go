package main

import (
	"context"
	"fmt"

	"mediaslot/config"
	"mediaslot/internal/pgdb"
)

// checkPostgres probes the PostgreSQL database of data.dsn without
// changing it: reachability, login, the database, the privileges to create
// and use mediaslot's schema, and the schema's version (pgdb.Check).
func checkPostgres(ctx context.Context, cfg config.Config) (string, string, error) {
	dsn, err := cfg.Data.ConnString()
	if err != nil {
		return "database", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*checkTimeout)
	defer cancel()
	st, err := pgdb.Check(ctx, dsn)
	if err != nil {
		return "database", "", err
	}
	detail := fmt.Sprintf("PostgreSQL %s at %s: schema version %d", st.Server, st.Where, st.Schema)
	if st.Pending > 0 {
		detail += fmt.Sprintf("; %d migration(s) to version %d will be applied at start (tried and rolled back)", st.Pending, pgdb.LatestVersion())
	} else {
		detail += ", current"
	}
	return "database", detail, nil
}
