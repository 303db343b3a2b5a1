// Package pgslots keeps slot records and quota accounting in PostgreSQL
// (the schema of internal/pgdb/migrations/0001_slots.sql), so that several
// mediaslot instances can share them.
//
// Every change is one statement or one call of a server-side function: one
// round trip, committed (durable) before it returns, and its statement
// prepared once per connection (pgx's statement cache). A slot is issued
// by mediaslot_issue_slot, which checks the quotas and inserts under
// advisory locks (see the migration): quotas are exact however many
// instances issue slots at once, and pending slots count in the database,
// not in one process's memory.
package pgslots

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/upload/slotstore"
)

// Store is a slotstore.Store on a PostgreSQL pool (internal/pgdb.Open).
type Store struct {
	pool *pgxpool.Pool
}

var _ slotstore.Store = (*Store)(nil)

// New returns a Store on pool, whose schema is migrated.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// callTimeout bounds each call's wait for the database, whatever the
// caller's context (PUTs record their completion without one): a server
// that stops answering (frozen, or behind a network that drops packets)
// fails the call, which its caller answers with a refusal (503,
// wait/service-unavailable), rather than hold a PUT, a download or a
// metrics scrape for the minutes the kernel takes to give up on the
// connection.
const callTimeout = 10 * time.Second

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

// nullTime is t for PostgreSQL: NULL for the zero time.
func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// scanOver reads the row of a quota a request does not fit, if any.
func scanOver(row pgx.Row) (*slotstore.Over, error) {
	var o slotstore.Over
	var scope int32
	var freed pgtype.Timestamptz
	err := row.Scan(&scope, &o.Limit, &o.Used, &o.Held, &freed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, notFound(err)
	}
	o.Scope, o.Freed = slotstore.Scope(scope), freed.Time
	return &o, nil
}

// notFound turns the functions' no_data_found into slotstore.ErrNotFound.
func notFound(err error) error {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "P0002" {
		return slotstore.ErrNotFound
	}
	return err
}

// Issue checks and records the slot in one call of mediaslot_issue_slot.
func (s *Store) Issue(ctx context.Context, id string, r slotstore.Record, holdUntil time.Time, q slotstore.Quota, now time.Time) (*slotstore.Over, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return scanOver(s.pool.QueryRow(ctx, `SELECT * FROM mediaslot_issue_slot($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		id, r.Owner, slotstore.DomainOf(r.Owner), r.Filename, r.Size, r.ContentType, r.Purpose, r.Issued, r.Expires,
		nullTime(r.DeleteAfter), nullTime(holdUntil), q.Daily, q.User, q.Domain, q.Total, now))
}

// Lookup reads a slot's record.
func (s *Store) Lookup(ctx context.Context, id string) (slotstore.Record, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var r slotstore.Record
	var deleteAfter, stored pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `SELECT owner, filename, size, content_type, purpose, issued, expires, delete_after, complete, stored, stored_type
		FROM slots WHERE id = $1`, id).Scan(&r.Owner, &r.Filename, &r.Size, &r.ContentType, &r.Purpose, &r.Issued, &r.Expires,
		&deleteAfter, &r.Complete, &stored, &r.StoredType)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, slotstore.ErrNotFound
	}
	r.DeleteAfter, r.Stored = deleteAfter.Time, stored.Time
	return r, err
}

// StartUpload checks the slot again and marks it uploading, in one call
// of mediaslot_start_upload.
func (s *Store) StartUpload(ctx context.Context, id string, q slotstore.Quota, now time.Time) (*slotstore.Over, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return scanOver(s.pool.QueryRow(ctx, `SELECT * FROM mediaslot_start_upload($1, $2, $3, $4, $5, $6)`,
		id, q.Daily, q.User, q.Domain, q.Total, now))
}

// EndUpload lets the slot's hold end at its hold_until again.
func (s *Store) EndUpload(ctx context.Context, id string, _ time.Time) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE slots SET uploading = false WHERE id = $1 AND uploading`, id)
	return err
}

// Complete records the upload in one call of mediaslot_complete_slot.
func (s *Store) Complete(ctx context.Context, id string, now time.Time, storedType string) (slotstore.Record, bool, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	r := slotstore.Record{Complete: true}
	var was bool
	var deleteAfter, stored pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `SELECT * FROM mediaslot_complete_slot($1, $2, $3, $4)`, id, now, slotstore.DailyStamp(now), storedType).
		Scan(&was, &r.Owner, &r.Filename, &r.Size, &r.ContentType, &r.Purpose, &r.Issued, &r.Expires, &deleteAfter, &stored, &r.StoredType)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, slotstore.ErrNotFound
	}
	r.DeleteAfter, r.Stored = deleteAfter.Time, stored.Time
	return r, was, err
}

// Forget deletes pending slots in one statement.
func (s *Store) Forget(ctx context.Context, ids ...string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM slots WHERE id = ANY($1) AND NOT complete`, ids)
	return err
}

// Expire deletes complete slots and uncounts them in one call of
// mediaslot_expire_slots.
func (s *Store) Expire(ctx context.Context, ids ...string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `SELECT mediaslot_expire_slots($1)`, ids)
	return err
}

// DuePending lists pending slots past their window, with their records.
func (s *Store) DuePending(ctx context.Context, t time.Time, n int) ([]slotstore.Slot, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT id, owner, filename, size, content_type, purpose, issued, expires, delete_after
		FROM slots WHERE NOT complete AND expires < $1 ORDER BY expires, id LIMIT $2`, t, n)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (slotstore.Slot, error) {
		var p slotstore.Slot
		var deleteAfter pgtype.Timestamptz
		err := row.Scan(&p.ID, &p.Owner, &p.Filename, &p.Size, &p.ContentType, &p.Purpose, &p.Issued, &p.Expires, &deleteAfter)
		p.DeleteAfter = deleteAfter.Time
		return p, err
	})
}

// DueExpired lists complete slots past their DeleteAfter.
func (s *Store) DueExpired(ctx context.Context, t time.Time, n int) ([]string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT id FROM slots WHERE complete AND delete_after < $1 ORDER BY delete_after, id LIMIT $2`, t, n)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// StoredBytes reads the service's usage row.
func (s *Store) StoredBytes(ctx context.Context) (int64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT bytes FROM slot_usage WHERE key = 'g'), 0)`).Scan(&n)
	return n, err
}
