package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"mediaslot/config"
	"mediaslot/internal/boltmem"
	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
	"mediaslot/internal/pgdb"
)

// dataBackend is what data.backend opened: the bbolt file with the
// group-commit writer all its writes go through, or the PostgreSQL pool
// with its schema migrated. The slot record store (upload) and the relay
// queue (offline) of the backend are built on it.
type dataBackend struct {
	db     *bolt.DB // bbolt
	writer *groupcommit.Writer
	pool   *pgxpool.Pool // postgres
}

// openData opens the backend of cfg.Data. The bbolt file is opened only
// after a full check (dbfile); the PostgreSQL database is reached, and its
// schema migrated, before serve starts, so a bad DSN fails at once with
// what to fix (pgdb.ProbeError).
func openData(ctx context.Context, cfg config.Config) (*dataBackend, error) {
	if cfg.Data.Backend == config.BackendPostgres {
		dsn, err := cfg.Data.ConnString()
		if err != nil {
			return nil, err
		}
		pool, err := pgdb.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return &dataBackend{pool: pool}, nil
	}
	db, err := dbfile.Open(ctx, dbPath(cfg), dbfile.Options())
	if err != nil {
		return nil, err
	}
	return &dataBackend{db: db, writer: groupcommit.New(db)}, nil
}

// Close closes what openData opened: the writer before its file.
func (d *dataBackend) Close(log *slog.Logger) {
	if d.pool != nil {
		d.pool.Close()
		return
	}
	d.writer.Close()
	if err := boltmem.Close(d.db); err != nil {
		log.Error("closing the database", "err", err)
	}
}
