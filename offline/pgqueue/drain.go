package pgqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/offline"
)

// Drain implements offline.Queue.Drain. Drains of one recipient take
// turns within the process (without holding a connection while they
// wait), then across processes by a session advisory lock on the
// connection the Drain reads through; Drains of others wait for a
// connection beyond the pool's reserve (reservedConns). Each batch is one query; the
// deletions of a batch go to the writer, so they share its commits.
func (q *Queue) Drain(ctx context.Context, recipient string, deliver func(offline.Entry) error) (delivered int, err error) {
	if err := offline.CheckRecipient(recipient); err != nil {
		return 0, err
	}
	unlock, err := q.drains.Lock(ctx, recipient)
	if err != nil {
		return 0, err
	}
	defer unlock()
	select {
	case q.drainConns <- struct{}{}:
		defer func() { <-q.drainConns }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	c, err := q.lockRecipient(ctx, recipient)
	if err != nil {
		return 0, err
	}
	defer q.unlockRecipient(ctx, c, recipient)
	return offline.DrainBatches(ctx, recipient,
		func(next uint64) ([]offline.Entry, error) { return readBatch(ctx, c, recipient, next) },
		func(ctx context.Context, done []offline.Entry) error {
			seqs := make([]int64, len(done))
			for i, e := range done {
				seqs[i] = int64(e.Seq)
			}
			return q.call(ctx, &op{forget: &forget{recipient: recipient, seqs: seqs}})
		},
		func() time.Time { return q.now().Add(-q.limits.TTL) },
		deliver)
}

// lockRecipient takes the advisory lock of recipient's Drains on a
// connection of the pool, which it holds until unlockRecipient.
func (q *Queue) lockRecipient(ctx context.Context, recipient string) (*pgxpool.Conn, error) {
	c, err := q.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: draining %s: %w", recipient, err)
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, drainLockClass, recipient); err != nil {
		// The lock may have been granted just as the wait was cancelled:
		// end the session, which holds it, rather than pool it.
		_ = c.Conn().Close(context.WithoutCancel(ctx))
		c.Release()
		return nil, fmt.Errorf("pgqueue: waiting for other drains of %s: %w", recipient, err)
	}
	return c, nil
}

// unlockRecipient releases the lock and the connection; if the unlock
// fails, ending the session releases it.
func (q *Queue) unlockRecipient(ctx context.Context, c *pgxpool.Conn, recipient string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
	defer cancel()
	if _, err := c.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, drainLockClass, recipient); err != nil {
		_ = c.Conn().Close(ctx)
	}
	c.Release()
}

// readBatch returns recipient's next entries from Seq next on: up to
// DrainBatch of them, and no more after DrainBatchBytes of stanzas.
func readBatch(ctx context.Context, c *pgxpool.Conn, recipient string, next uint64) ([]offline.Entry, error) {
	rows, err := c.Query(ctx, `WITH b AS (
			SELECT seq FROM relay_entries WHERE recipient = $1 AND seq >= $2 ORDER BY seq LIMIT $3
		), w AS (
			SELECT b.seq, sum(s.size) OVER (ORDER BY b.seq) - s.size AS before
			FROM b JOIN relay_stanzas s ON s.id = b.seq
		)
		SELECT s.id, s.sender, s.accepted, s.stanza FROM w JOIN relay_stanzas s ON s.id = w.seq
		WHERE w.before < $4 ORDER BY s.id`,
		recipient, int64(next), offline.DrainBatch, offline.DrainBatchBytes)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: reading the queue of %s: %w", recipient, err)
	}
	var batch []offline.Entry
	var seq, accepted int64
	var e offline.Entry
	_, err = pgx.ForEachRow(rows, []any{&seq, &e.Sender, &accepted, &e.Stanza}, func() error {
		batch = append(batch, offline.Entry{Recipient: recipient, Seq: uint64(seq), Sender: e.Sender, Accepted: time.Unix(0, accepted), Stanza: e.Stanza})
		e.Stanza = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgqueue: reading the queue of %s: %w", recipient, err)
	}
	return batch, nil
}
