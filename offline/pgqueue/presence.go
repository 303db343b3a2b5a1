package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"mediaslot/offline"
)

// presenceTimeout bounds Update and State, which the relay calls for every
// presence and message (with the link's context, which has no deadline):
// a database that stops answering fails them, and a message is queued
// (or refused) rather than held with every later stanza of its shard.
const presenceTimeout = readTimeout

// Update implements offline.Presence in one statement: the user's known
// row, the resource's row unless a newer presence is recorded, and the
// user's unavailable resources older than offline.TombstoneAge go.
func (q *Queue) Update(ctx context.Context, bare, full string, available bool, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	_, err := q.pool.Exec(ctx, `WITH known AS (
			INSERT INTO relay_presence (bare, resource) VALUES ($1, '') ON CONFLICT DO NOTHING
		), gone AS (
			DELETE FROM relay_presence WHERE bare = $1 AND resource NOT IN ('', $2) AND NOT available AND at < $4
		)
		INSERT INTO relay_presence (bare, resource, available, at) VALUES ($1, $2, $3, $5)
		ON CONFLICT (bare, resource) DO UPDATE SET available = EXCLUDED.available, at = EXCLUDED.at
		WHERE relay_presence.at < EXCLUDED.at`,
		bare, full, available, at.Add(-offline.TombstoneAge).UnixNano(), at.UnixNano())
	if err != nil {
		return fmt.Errorf("pgqueue: recording a presence of %s: %w", bare, err)
	}
	return nil
}

// State implements offline.Presence.
func (q *Queue) State(ctx context.Context, bare string) (online, known bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	var on, n int
	err = q.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE available AND resource <> ''), count(*)
		FROM relay_presence WHERE bare = $1`, bare).Scan(&on, &n)
	if err != nil {
		return false, false, fmt.Errorf("pgqueue: reading the presence of %s: %w", bare, err)
	}
	return on > 0, n > 0, nil
}

// Reset implements offline.Presence.
func (q *Queue) Reset(ctx context.Context) error {
	if _, err := q.pool.Exec(ctx, `DELETE FROM relay_presence`); err != nil {
		return fmt.Errorf("pgqueue: forgetting presences: %w", err)
	}
	return nil
}

// Waiting returns up to limit recipients who are online and have entries
// queued: those whose drain an instance that died left unfinished, for
// the relay's sweep to drain.
func (q *Queue) Waiting(ctx context.Context, limit int) ([]string, error) {
	rows, err := q.pool.Query(ctx, `SELECT p.bare FROM relay_presence p
		WHERE p.resource = '' AND EXISTS (SELECT 1 FROM relay_presence o WHERE o.bare = p.bare AND o.resource <> '' AND o.available)
		AND EXISTS (SELECT 1 FROM relay_entries e WHERE e.recipient = p.bare) LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: listing online recipients with entries: %w", err)
	}
	var out []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// SetGrant implements offline.Presence.
func (q *Queue) SetGrant(ctx context.Context, grant []byte) error {
	if _, err := q.pool.Exec(ctx, `INSERT INTO relay_grant (grant_) VALUES ($1)
		ON CONFLICT (id) DO UPDATE SET grant_ = EXCLUDED.grant_`, grant); err != nil {
		return fmt.Errorf("pgqueue: recording the server's grant: %w", err)
	}
	return nil
}

// Grant implements offline.Presence.
func (q *Queue) Grant(ctx context.Context) ([]byte, error) {
	var g []byte
	err := q.pool.QueryRow(ctx, `SELECT grant_ FROM relay_grant`).Scan(&g)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgqueue: reading the server's grant: %w", err)
	}
	return g, nil
}
