package pgqueue

import (
	"context"
	"fmt"
)

// Update implements offline.Presence: the user's known row and, while the
// resource is available, its own row, in one statement.
func (q *Queue) Update(ctx context.Context, bare, full string, available bool) error {
	var err error
	if available {
		_, err = q.pool.Exec(ctx, `INSERT INTO relay_presence (bare, resource) VALUES ($1, ''), ($1, $2)
			ON CONFLICT DO NOTHING`, bare, full)
	} else {
		_, err = q.pool.Exec(ctx, `WITH known AS (INSERT INTO relay_presence (bare, resource) VALUES ($1, '')
			ON CONFLICT DO NOTHING) DELETE FROM relay_presence WHERE bare = $1 AND resource = $2`, bare, full)
	}
	if err != nil {
		return fmt.Errorf("pgqueue: recording a presence of %s: %w", bare, err)
	}
	return nil
}

// State implements offline.Presence.
func (q *Queue) State(ctx context.Context, bare string) (online, known bool, err error) {
	var n int
	err = q.pool.QueryRow(ctx, `SELECT count(*) FROM relay_presence WHERE bare = $1`, bare).Scan(&n)
	if err != nil {
		return false, false, fmt.Errorf("pgqueue: reading the presence of %s: %w", bare, err)
	}
	return n > 1, n > 0, nil
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
		WHERE p.resource = '' AND EXISTS (SELECT 1 FROM relay_presence o WHERE o.bare = p.bare AND o.resource <> '')
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
