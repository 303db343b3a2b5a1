package pgslots

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"mediaslot/upload/slotstore"
)

// What `mediaslot migrate-data` writes to move slot state from another
// backend (boltslots' Export) into the database, in its transaction tx, a
// batch a call. A slot the database already has is left as it is: it may
// have changed since (the slot completed, say), and the database's is
// then the newer.

// ImportSlots writes slot records, keeping their ids, and returns how
// many were new. A pending slot holds its size until it is completed or
// the sweeper settles it (hold_until NULL), as the pending slots of a
// bbolt file do when it is opened for direct uploads: never less than
// they held there.
func ImportSlots(ctx context.Context, tx pgx.Tx, slots []slotstore.Slot) (int64, error) {
	n := len(slots)
	var (
		ids, owners, domains, names, types, purposes, storedTypes = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		sizes                                                     = make([]int64, n)
		issued, expires                                           = make([]time.Time, n), make([]time.Time, n)
		deleteAfter, stored                                       = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		complete                                                  = make([]bool, n)
	)
	for i, s := range slots {
		ids[i], owners[i], domains[i], names[i] = s.ID, s.Owner, slotstore.DomainOf(s.Owner), s.Filename
		types[i], purposes[i], storedTypes[i] = s.ContentType, s.Purpose, s.StoredType
		sizes[i], issued[i], expires[i], complete[i] = s.Size, s.Issued, s.Expires, s.Complete
		deleteAfter[i], stored[i] = nullTime(s.DeleteAfter), nullTime(s.Stored)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO slots (id, owner, domain, filename, size, content_type, purpose, issued, expires,
			delete_after, complete, stored, stored_type)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
			$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::timestamptz[], $13::text[])
		ON CONFLICT (id) DO NOTHING`,
		ids, owners, domains, names, sizes, types, purposes, issued, expires, deleteAfter, complete, stored, storedTypes)
	return tag.RowsAffected(), err
}

// ImportDaily writes daily-quota rows and returns how many were new; a
// row of an owner's minute the database has already gets the bytes added,
// as both are uploads of that minute. So a row must be written once: the
// caller keeps track of what it wrote (migrate-data commits its progress
// with each batch).
func ImportDaily(ctx context.Context, tx pgx.Tx, rows []slotstore.DailyUploads) (int64, error) {
	owners, stamps, sizes := make([]string, len(rows)), make([]time.Time, len(rows)), make([]int64, len(rows))
	for i, d := range rows {
		owners[i], stamps[i], sizes[i] = d.Owner, d.Stamp, d.Bytes
	}
	var n int64
	err := tx.QueryRow(ctx, `WITH w AS (
			INSERT INTO slot_daily AS d (owner, stamp, bytes)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[])
			ON CONFLICT ON CONSTRAINT slot_daily_pkey DO UPDATE SET bytes = least(d.bytes::numeric + EXCLUDED.bytes, 9223372036854775807)::bigint
			RETURNING xmax = 0 AS inserted)
		SELECT count(*) FILTER (WHERE inserted) FROM w`, owners, stamps, sizes).Scan(&n)
	return n, err
}

// RecountUsage sets the stored bytes of every owner, domain and of all
// (slot_usage) to the sums of the complete slots' sizes, which every
// completion and expiry keep them equal to, and returns the bytes of all.
// It is for a database no instance serves from while it runs; two
// recounts take turns (a self-conflicting table lock), so moves of two
// files may finish at once.
func RecountUsage(ctx context.Context, tx pgx.Tx) (int64, error) {
	if _, err := tx.Exec(ctx, `LOCK TABLE slot_usage IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM slot_usage`); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO slot_usage (key, bytes)
		SELECT k, least(sum(size), 9223372036854775807)::bigint FROM (
			SELECT 'u:' || owner AS k, size FROM slots WHERE complete
			UNION ALL SELECT 'd:' || domain, size FROM slots WHERE complete
			UNION ALL SELECT 'g', size FROM slots WHERE complete) f
		GROUP BY k ORDER BY k`); err != nil {
		return 0, err
	}
	var n int64
	err := tx.QueryRow(ctx, `SELECT coalesce((SELECT bytes FROM slot_usage WHERE key = 'g'), 0)`).Scan(&n)
	return n, err
}
