package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"mediaslot/config"
	"mediaslot/internal/boltmem"
	"mediaslot/internal/dbfile"
	"mediaslot/internal/pgdb"
	"mediaslot/offline"
	"mediaslot/offline/pgqueue"
	"mediaslot/upload/slotstore/boltslots"
	"mediaslot/upload/slotstore/pgslots"
)

const migrateAbout = `Moves the state of a bbolt file (slot records, the daily quota's uploads,
the relay queue with its seen recipients) into a PostgreSQL database, in
batches. Stored bytes and the queue's counters are then recounted from the
rows. Run it with mediaslot stopped (it refuses a file a running mediaslot
holds), and start mediaslot on PostgreSQL once it reports done.

Interrupted, it resumes where its last committed batch left off when run
again; once done, it copies nothing again. A slot the database has
already (same id) is left as it is; an owner's uploads of a minute it has
count with the file's. Relay stanzas keep their order per recipient; their
ids are moved past those the database issued, so nothing it holds is
overwritten. The bbolt file is left as it was, but for the id
migrate-data gives it (in a bucket of its own), by which the database
knows it. docs/OPERATIONS.md, "Moving from bbolt to PostgreSQL".`

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate-data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the bbolt file: `bbolt:PATH` (default: data.dir/mediaslot.db of --config)")
	to := fs.String("to", "", "the database: `postgres:DSN` or a postgres:// URL (default: data.dsn of --config)")
	cfgPath := fs.String("config", "", "configuration `file` whose [data] names the ends not given, and the database's password (password, password_file, "+config.EnvDataPassword+")")
	batch := fs.Int("batch", 1000, "rows per transaction: slots, daily entries, seen recipients or stanzas (at most 16 MiB of them)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mediaslot migrate-data [--from bbolt:PATH] [--to postgres:DSN] [--config FILE]\n\n%s\n\nflags:\n", migrateAbout)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *batch < 1 {
		fs.Usage()
		return errUsage
	}
	path, dsn, err := migrateEnds(*from, *to, *cfgPath)
	if err != nil {
		return err
	}
	m := &migration{path: path, dsn: dsn, batch: *batch, out: stdout}
	return m.run(ctx)
}

// migrateEnds returns the bbolt file and the connection string the flags
// (and the configuration at cfgPath, if named) give.
func migrateEnds(from, to, cfgPath string) (path, dsn string, err error) {
	var cfg *config.Config
	if cfgPath != "" {
		c, err := config.Load(cfgPath)
		if err != nil {
			return "", "", err
		}
		cfg = &c
	}
	switch {
	case strings.HasPrefix(from, "bbolt:"):
		path = strings.TrimPrefix(from, "bbolt:")
	case from != "":
		return "", "", fmt.Errorf("--from %q: want bbolt:PATH", from)
	case cfg != nil:
		path = dbPath(*cfg)
	default:
		return "", "", errors.New("name the bbolt file: --from bbolt:PATH, or --config FILE for data.dir/mediaslot.db")
	}
	data := config.Data{Password: os.Getenv(config.EnvDataPassword)}
	if cfg != nil {
		data = cfg.Data
	}
	switch {
	case strings.HasPrefix(to, "postgres://"), strings.HasPrefix(to, "postgresql://"):
		data.DSN = to
	case strings.HasPrefix(to, "postgres:"):
		data.DSN = strings.TrimPrefix(to, "postgres:")
	case to != "":
		return "", "", fmt.Errorf("--to %q: want postgres:DSN", to)
	case cfg == nil || cfg.Data.DSN == "":
		return "", "", errors.New("name the database: --to postgres:DSN, or --config FILE with data.dsn")
	}
	dsn, err = data.ConnString()
	return path, dsn, err
}

// migration is one run of migrate-data.
type migration struct {
	path  string
	dsn   string
	batch int
	out   io.Writer
	// afterBatch, if set, runs in each batch's transaction before its
	// progress is recorded (tests interrupt runs there).
	afterBatch func()

	db     *bolt.DB
	mapped *boltmem.Budget // of the file's pages the batches leave mapped
	source string
	offset int64 // of relay stanza ids
	moved  moved
}

// moved counts what a run wrote, and what it found there already.
type moved struct {
	slots, slotsThere, daily, dailyThere, seen, stanzas, stanzasThere, entries int64
	stored                                                                     int64 // bytes of complete files, recounted
}

func (n *moved) add(d moved) {
	n.slots += d.slots
	n.slotsThere += d.slotsThere
	n.daily += d.daily
	n.dailyThere += d.dailyThere
	n.seen += d.seen
	n.stanzas += d.stanzas
	n.stanzasThere += d.stanzasThere
	n.entries += d.entries
}

// The phases of a move, in order; each resumes after its cursor.
const (
	phaseSlots = iota
	phaseDaily
	phaseSeen
	phaseRelay
	phaseRecount
)

// mappedBudget bounds the file's pages a move keeps resident (see
// boltmem; the relay queue's budget, offline's mappedBudget, is the same).
const mappedBudget = 8 << 20

// sourceBucket holds the id migrate-data gives a bbolt file (key "id").
var sourceBucket = []byte("migrate-data")

func (m *migration) run(ctx context.Context) (err error) {
	if st, err := os.Stat(m.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist: name the bbolt file of the stopped mediaslot (data.dir/mediaslot.db)", m.path)
		}
		return err
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", m.path)
	}
	m.db, err = dbfile.Open(ctx, m.path, dbfile.Options())
	if errors.Is(err, dbfile.ErrLocked) {
		return fmt.Errorf("%w; stop it first: migrate-data moves the data of a stopped mediaslot", err)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := boltmem.Close(m.db); err == nil {
			err = cerr
		}
	}()
	// Each batch reads pages all over the file: unmapped again past the
	// budget, the resident memory stays bounded whatever the file's size.
	m.mapped = boltmem.NewBudget(mappedBudget)
	if m.source, err = m.sourceID(); err != nil {
		return fmt.Errorf("giving %s its id: %w", m.path, err)
	}
	pool, err := pgdb.Open(ctx, m.dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	phase, cursor, finished, err := m.start(ctx, pool)
	if err != nil {
		return err
	}
	if !finished.IsZero() {
		fmt.Fprintf(m.out, "%s was moved into this database at %s (source %s): nothing to copy\n", m.path, finished.UTC().Format(time.RFC3339), m.source)
		return nil
	}
	defer func() {
		switch {
		case err != nil && ctx.Err() != nil:
			err = fmt.Errorf("interrupted (%w): run migrate-data again to go on from the last batch it committed", err)
		case err != nil:
			err = fmt.Errorf("%w; once that is fixed, run migrate-data again to go on from the last batch it committed", err)
		}
	}()
	if err := m.copyPhases(ctx, pool, phase, cursor); err != nil {
		return err
	}
	if err := m.finish(ctx, pool); err != nil {
		return err
	}
	m.report()
	return nil
}

// copyPhases copies the phases from phase on, the first after cursor, a batch
// a transaction that also records the progress.
func (m *migration) copyPhases(ctx context.Context, pool *pgxpool.Pool, phase int, cursor []byte) error {
	for ; phase < phaseRecount; phase, cursor = phase+1, nil {
		for {
			var next []byte
			var d moved
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				var err error
				if next, err = m.step(ctx, tx, phase, cursor, &d); err != nil {
					return err
				}
				if m.afterBatch != nil {
					m.afterBatch()
				}
				p, c := phase, next
				if next == nil {
					p, c = phase+1, []byte{}
				}
				_, err = tx.Exec(ctx, `UPDATE mediaslot_imports SET phase = $2, cursor = $3 WHERE source = $1`, m.source, p, c)
				return err
			})
			if err != nil {
				return err
			}
			m.moved.add(d)
			if err := m.db.View(func(tx *bolt.Tx) error { m.mapped.Trim(tx); return nil }); err != nil {
				return err
			}
			if next == nil {
				break
			}
			cursor = next
		}
	}
	return nil
}

// finish recounts the sums and counters from the rows and records the
// move as finished, in one transaction.
func (m *migration) finish(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if m.moved.stored, err = pgslots.RecountUsage(ctx, tx); err != nil {
			return fmt.Errorf("recounting stored bytes: %w", err)
		}
		if err := pgqueue.Recount(ctx, tx); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE mediaslot_imports SET phase = $2, finished = now() WHERE source = $1`, m.source, phaseRecount+1)
		return err
	})
}

// sourceID returns the file's id, giving it one if it has none.
func (m *migration) sourceID() (string, error) {
	var id string
	err := m.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(sourceBucket)
		if err != nil {
			return err
		}
		if v := b.Get([]byte("id")); v != nil {
			id = string(v)
			return nil
		}
		id = rand.Text()
		return b.Put([]byte("id"), []byte(id))
	})
	return id, err
}

// start reads the progress of the file's move, recording its start (and
// reserving its relay stanza ids) if it is new.
func (m *migration) start(ctx context.Context, pool *pgxpool.Pool) (phase int, cursor []byte, finished time.Time, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var fin *time.Time
		err := tx.QueryRow(ctx, `SELECT phase, cursor, seq_offset, finished FROM mediaslot_imports WHERE source = $1`, m.source).
			Scan(&phase, &cursor, &m.offset, &fin)
		if err == nil {
			if fin != nil {
				finished = *fin
			} else {
				fmt.Fprintf(m.out, "resuming the move of %s (source %s) where the last run left off\n", m.path, m.source)
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading the progress of earlier runs: %w", err)
		}
		last, err := offline.LastSeq(m.db)
		if err != nil {
			return err
		}
		if m.offset, err = pgqueue.ReserveSeqs(ctx, tx, last); err != nil {
			return err
		}
		fmt.Fprintf(m.out, "moving %s (source %s) into the database\n", m.path, m.source)
		_, err = tx.Exec(ctx, `INSERT INTO mediaslot_imports (source, path, seq_offset) VALUES ($1, $2, $3)`, m.source, m.path, m.offset)
		return err
	})
	return phase, cursor, finished, err
}

// step copies the batch of phase after cursor in tx, and returns the
// cursor after it, or nil when the phase had nothing left.
func (m *migration) step(ctx context.Context, tx pgx.Tx, phase int, cursor []byte, d *moved) ([]byte, error) {
	switch phase {
	case phaseSlots:
		slots, err := boltslots.ExportSlots(m.db, string(cursor), m.batch)
		if err != nil || len(slots) == 0 {
			return nil, err
		}
		n, err := pgslots.ImportSlots(ctx, tx, slots)
		d.slots, d.slotsThere = n, int64(len(slots))-n
		return []byte(slots[len(slots)-1].ID), err
	case phaseDaily:
		rows, last, err := boltslots.ExportDaily(m.db, cursor, m.batch)
		if err != nil || len(rows) == 0 {
			return nil, err
		}
		n, err := pgslots.ImportDaily(ctx, tx, rows)
		d.daily, d.dailyThere = n, int64(len(rows))-n
		return last, err
	case phaseSeen:
		seen, err := offline.ExportSeen(m.db, string(cursor), m.batch)
		if err != nil || len(seen) == 0 {
			return nil, err
		}
		n, err := pgqueue.ImportSeen(ctx, tx, seen)
		d.seen = n
		return []byte(seen[len(seen)-1].Recipient), err
	case phaseRelay:
		var after uint64
		if len(cursor) == 8 {
			after = binary.BigEndian.Uint64(cursor)
		}
		stanzas, err := offline.ExportStanzas(m.db, after, m.batch)
		if err != nil || len(stanzas) == 0 {
			return nil, err
		}
		s, e, err := pgqueue.ImportStanzas(ctx, tx, stanzas, m.offset)
		d.stanzas, d.stanzasThere, d.entries = s, int64(len(stanzas))-s, e
		return binary.BigEndian.AppendUint64(nil, stanzas[len(stanzas)-1].Seq), err
	}
	return nil, fmt.Errorf("unknown phase %d", phase)
}

// report prints what the run moved.
func (m *migration) report() {
	n := m.moved
	fmt.Fprintf(m.out, "slot records: %d moved, %d found in the database already (kept as they are)\n", n.slots, n.slotsThere)
	fmt.Fprintf(m.out, "daily quota entries (owner and minute): %d moved, %d added to the database's of the same minute\n", n.daily, n.dailyThere)
	fmt.Fprintf(m.out, "stored bytes recounted from the records: %d\n", n.stored)
	fmt.Fprintf(m.out, "relay queue: %d stanzas with %d entries moved (ids shifted by %d), %d found already; %d recipients newly marked seen\n",
		n.stanzas, n.entries, m.offset, n.stanzasThere, n.seen)
	fmt.Fprintf(m.out, "done: %s is moved; start mediaslot with data.backend = \"postgres\"\n", m.path)
}
