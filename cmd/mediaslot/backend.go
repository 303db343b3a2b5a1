package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"mediaslot/config"
	"mediaslot/internal/boltmem"
	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
	"mediaslot/internal/pgdb"
	"mediaslot/offline"
	"mediaslot/offline/pgqueue"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/boltslots"
	"mediaslot/upload/slotstore/pgslots"
)

// dataBackend is what data.backend opened: the bbolt file with the
// group-commit writer all its writes go through, or the PostgreSQL pool
// with its schema migrated. The slot record store (upload) and the relay
// queue (offline) of the backend are built on it.
type dataBackend struct {
	db     *bolt.DB // bbolt
	writer *groupcommit.Writer
	pool   *pgxpool.Pool // postgres
	closes []func()      // of what was built on it, closed before it
}

// records builds the slot record store of the backend (direct: clients
// upload straight to the store, see boltslots.Options).
func (d *dataBackend) records(direct bool, log *slog.Logger) (slotstore.Store, error) {
	if d.pool != nil {
		return pgslots.New(d.pool), nil
	}
	s, err := boltslots.Open(d.db, d.writer, boltslots.Options{Direct: direct, Logger: log})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// queue builds the relay queue of the backend.
func (d *dataBackend) queue(ctx context.Context, l offline.Limits) (offline.Queue, error) {
	if d.pool != nil {
		q, err := pgqueue.Open(ctx, d.pool, l)
		if err != nil {
			return nil, err
		}
		d.closes = append(d.closes, q.Close)
		return q, nil
	}
	q, err := offline.Open(d.db, d.writer, l)
	if err != nil {
		return nil, err
	}
	return q, nil
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

// ready returns the readiness check of the backend (see readiness): nil
// for bbolt, whose file is checked at start; for PostgreSQL a ping of the
// pool (dbProbe).
func (d *dataBackend) ready() func() error {
	if d.pool == nil {
		return nil
	}
	return (&dbProbe{ping: d.pool.Ping, now: time.Now}).err
}

// How /readyz asks PostgreSQL: a ping that does not answer within
// dbProbeTimeout counts as down (a stalled server never answers; probes
// of orchestrators give up after a second or so), and an answer counts for
// dbProbeFor, so that frequent probes cost at most a round trip a second.
const (
	dbProbeTimeout = time.Second
	dbProbeFor     = time.Second
)

// dbProbe pings the database for readiness, its answer kept for
// dbProbeFor. Probes at once wait for one ping and share its answer.
type dbProbe struct {
	ping func(context.Context) error
	now  func() time.Time

	mu  sync.Mutex
	at  time.Time // of the last answer; zero: none yet
	ans error
}

func (p *dbProbe) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && p.now().Sub(p.at) < dbProbeFor {
		return p.ans
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbProbeTimeout)
	defer cancel()
	p.ans = p.ping(ctx)
	p.at = p.now()
	return p.ans
}

// Close closes what was built on the backend, then what openData opened:
// the writer before its file.
func (d *dataBackend) Close(log *slog.Logger) {
	for _, c := range slices.Backward(d.closes) {
		c()
	}
	if d.pool != nil {
		d.pool.Close()
		return
	}
	d.writer.Close()
	if err := boltmem.Close(d.db); err != nil {
		log.Error("closing the database", "err", err)
	}
}
