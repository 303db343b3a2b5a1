// Package pgqueue keeps the relay queue (offline.Queue) in PostgreSQL, in
// the tables of internal/pgdb/migrations/0002_relay.sql, with the promises
// of offline.BoltQueue: an Enqueue returns once committed, caps are exact
// however many instances write at once, a recipient's entries drain in
// order and are deleted only after deliver returned nil.
//
// Every writing transaction locks the one row of relay_state first: the
// writers of all instances take turns, as bbolt's single writer does, so
// the counters the caps read are exact and Seq, handed out from that row,
// grows in commit order (a Drain can never pass an entry that commits
// later with a lower Seq). What makes the turns cheap is group commit: one
// goroutine per Queue runs whatever Enqueues, MarkSeens and deletions of
// Drains are waiting in one transaction, with a handful of statements for
// the whole batch (rows go in as arrays through unnest). Drains of one
// recipient take a session advisory lock, so two instances never drain one
// recipient at once.
package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/offline"
)

// Bounds of one group-commit transaction: its statements carry all its
// rows, so they bound the memory of one round trip too.
const (
	maxBatch      = 1024
	maxBatchBytes = 16 << 20 // of stanzas
)

// purgeBatch bounds the stanzas (or, for the unseen TTL, the entries) one
// Purge transaction deletes, so it holds the other writers up only briefly.
const purgeBatch = 1024

// readTimeout bounds Pending and Stats, which have no context: a database
// that does not answer makes them report nothing pending (or an error)
// rather than stall their caller.
const readTimeout = 5 * time.Second

// commitTimeout bounds one group commit, waiting for a connection
// included: past it the batch's callers get an error (an Enqueue whose
// COMMIT was cut may still have been stored: at least once, never lost)
// rather than wait for a database that does not answer.
const commitTimeout = 30 * time.Second

// reservedConns are the pool's connections Drains leave to the writer and
// to everyone else: a Drain holds a connection while it delivers (for its
// advisory lock), and without the reserve as many Drains as connections
// would each wait for the writer to delete what they delivered, and the
// writer for a connection.
const reservedConns = 2

// maxSeenCache bounds the recipients MarkSeen remembers as marked, so that
// a known recipient's presence costs no round trip. Past it the cache
// starts over: a forgotten recipient costs one idempotent write.
const maxSeenCache = 1 << 16

// drainLockClass is the first key of the advisory locks of Drains (the
// bytes of "rlyq"); the second is hashtext(recipient). Two recipients
// whose hashes collide only drain one after the other.
const drainLockClass int32 = 0x726c7971

// ErrClosed is returned by Enqueue and MarkSeen after Close.
var ErrClosed = errors.New("pgqueue: queue closed")

// Queue is the relay queue in PostgreSQL. Its methods are safe for
// concurrent use; several Queues, in several processes, may share one
// database.
type Queue struct {
	pool   *pgxpool.Pool
	limits offline.Limits
	now    func() time.Time // replaced by tests

	ops  chan *op
	done chan struct{}
	// mu guards closing ops: senders hold it shared, Close exclusively.
	mu     sync.RWMutex
	closed bool

	seenMu sync.Mutex
	seen   map[string]struct{} // recipients known to be marked seen

	drains offline.DrainLocks
	// drainConns holds a token per Drain holding a connection: at most
	// the pool's size less reservedConns.
	drainConns chan struct{}
}

var _ offline.Queue = (*Queue)(nil)

// Open returns the queue in the database of pool, whose schema
// internal/pgdb has brought up to date, and starts its writer. The pool
// stays the caller's; Close the Queue before closing it. Each running
// Drain holds one of the pool's connections (for its advisory lock), all
// but reservedConns of them at most, and the writer one while it commits.
func Open(ctx context.Context, pool *pgxpool.Pool, l offline.Limits) (*Queue, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM relay_state`).Scan(&n); err != nil {
		return nil, fmt.Errorf("pgqueue: reading the queue's state: %w", err)
	}
	if n != 1 {
		return nil, fmt.Errorf("pgqueue: relay_state has %d rows, want 1", n)
	}
	q := &Queue{
		pool:   pool,
		limits: l.WithDefaults(),
		now:    time.Now,
		ops:    make(chan *op, maxBatch),
		done:   make(chan struct{}),
		seen:   make(map[string]struct{}),

		drainConns: make(chan struct{}, max(1, int(pool.Config().MaxConns)-reservedConns)),
	}
	go q.loop()
	return q, nil
}

// Close commits what was handed to the writer and stops it.
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ops)
	}
	q.mu.Unlock()
	<-q.done
}

// op is one call handed to the writer.
type op struct {
	markSeen string              // MarkSeen: the recipient
	msg      *offline.Message    // Enqueue
	forget   *forget             // a Drain's deletions
	barrier  bool                // nothing to write: answered once what came before is committed
	refused  *offline.LimitError // Enqueue's outcome, set by the writer
	done     chan error          // nil for MarkSeen, which nobody waits for
}

type forget struct {
	recipient string
	seqs      []int64
}

// submit hands o to the writer, unless ctx ends first.
func (q *Queue) submit(ctx context.Context, o *op) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case q.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call hands o to the writer and waits for its outcome, whatever ctx does
// once it was handed over: the caller must know whether it was stored.
func (q *Queue) call(ctx context.Context, o *op) error {
	o.done = make(chan error, 1)
	if err := q.submit(ctx, o); err != nil {
		return err
	}
	return <-o.done
}

// Enqueue implements offline.Queue.Enqueue: it returns once committed.
func (q *Queue) Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error {
	m, err := offline.NewMessage(sender, recipients, stanza)
	if err != nil {
		return err
	}
	o := &op{msg: &m}
	if err := q.call(ctx, o); err != nil {
		return err
	}
	if o.refused != nil {
		return o.refused
	}
	return nil
}

// MarkSeen implements offline.Queue.MarkSeen. A recipient this Queue
// marked before costs a map lookup; a new one is handed to the writer,
// which commits it before the Enqueues handed over after it.
func (q *Queue) MarkSeen(ctx context.Context, recipient string) error {
	if err := offline.CheckRecipient(recipient); err != nil {
		return err
	}
	q.seenMu.Lock()
	_, known := q.seen[recipient]
	q.seenMu.Unlock()
	if known {
		return nil
	}
	return q.submit(ctx, &op{markSeen: recipient})
}

// Pending implements offline.Queue.Pending: one index lookup.
func (q *Queue) Pending(recipient string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var pending bool
	err := q.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM relay_entries WHERE recipient = $1)`, recipient).Scan(&pending)
	return err == nil && pending
}

// Stats implements offline.Queue.Stats: the totals row and the head of
// the index by acceptance time.
func (q *Queue) Stats() (offline.Stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var s offline.Stats
	var oldest *int64
	err := q.pool.QueryRow(ctx, `SELECT entries, stanzas, bytes, recipients,
		(SELECT accepted FROM relay_stanzas ORDER BY accepted, id LIMIT 1) FROM relay_state`).
		Scan(&s.Entries, &s.Stanzas, &s.Bytes, &s.Recipients, &oldest)
	if err != nil {
		return offline.Stats{}, fmt.Errorf("pgqueue: reading the totals: %w", err)
	}
	if oldest != nil {
		s.Oldest = time.Unix(0, *oldest)
	}
	return s, nil
}

// loop is the writer: it commits what is waiting in one transaction,
// while the next batch gathers.
func (q *Queue) loop() {
	defer close(q.done)
	batch := make([]*op, 0, maxBatch)
	for o := range q.ops {
		batch = append(batch[:0], o)
		size := stanzaSize(o)
	fill:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case o, ok := <-q.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
				size += stanzaSize(o)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		err := q.commit(ctx, batch)
		cancel()
		for _, o := range batch {
			if o.done != nil {
				o.done <- err
			} else if err == nil {
				q.rememberSeen(o.markSeen)
			}
		}
	}
}

func stanzaSize(o *op) int {
	if o.msg == nil {
		return 0
	}
	return len(o.msg.Stanza)
}

func (q *Queue) rememberSeen(r string) {
	q.seenMu.Lock()
	if len(q.seen) >= maxSeenCache {
		clear(q.seen)
	}
	q.seen[r] = struct{}{}
	q.seenMu.Unlock()
}

// commit runs a batch in one transaction: first the deletions of Drains,
// then the MarkSeens, then the Enqueues, each of which is stored or
// refused by the caps as they stand after those before it.
func (q *Queue) commit(ctx context.Context, batch []*op) error {
	if !slices.ContainsFunc(batch, func(o *op) bool { return !o.barrier }) {
		return nil
	}
	return pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		st, err := lockState(ctx, tx)
		if err != nil {
			return err
		}
		var seen []string
		var msgs []*op
		for _, o := range batch {
			switch {
			case o.barrier:
			case o.forget != nil:
				f := o.forget
				if _, _, err := st.remove(ctx, tx, `e.recipient = $1 AND e.seq = ANY($2)`, f.recipient, f.seqs); err != nil {
					return err
				}
			case o.msg != nil:
				msgs = append(msgs, o)
			default:
				seen = append(seen, o.markSeen)
			}
		}
		if len(seen) > 0 {
			if err := st.markSeen(ctx, tx, seen, q.now()); err != nil {
				return err
			}
		}
		if len(msgs) > 0 {
			if err := st.enqueue(ctx, tx, q.limits, msgs, q.now()); err != nil {
				return err
			}
		}
		return st.save(ctx, tx)
	})
}

// Purge implements offline.Queue.Purge, in transactions of up to
// purgeBatch stanzas (or unseen entries) each.
func (q *Queue) Purge(ctx context.Context, now time.Time) (int, error) {
	// MarkSeens handed to the writer before count, as they do on bbolt.
	if err := q.call(ctx, &op{barrier: true}); err != nil {
		return 0, err
	}
	purged := 0
	for _, p := range []struct {
		cond   string
		before time.Time
	}{
		{`e.seq IN (SELECT id FROM relay_stanzas WHERE accepted < $1 ORDER BY accepted, id LIMIT $2)`, now.Add(-q.limits.TTL)},
		{`(e.recipient, e.seq) IN (SELECT recipient, seq FROM relay_entries WHERE unseen AND accepted < $1 ORDER BY accepted, seq LIMIT $2)`, now.Add(-q.limits.UnseenTTL)},
	} {
		for {
			var entries, stanzas int
			err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
				st, err := lockState(ctx, tx)
				if err != nil {
					return err
				}
				if entries, stanzas, err = st.remove(ctx, tx, p.cond, p.before.UnixNano(), purgeBatch); err != nil {
					return err
				}
				return st.save(ctx, tx)
			})
			if err != nil {
				return purged, fmt.Errorf("pgqueue: purging: %w", err)
			}
			purged += entries
			if entries == 0 || (stanzas < purgeBatch && entries < purgeBatch) {
				break
			}
		}
	}
	return purged, nil
}
