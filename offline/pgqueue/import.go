package pgqueue

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mediaslot/offline"
)

// What `mediaslot migrate-data` writes to move a relay queue from another
// backend (offline.ExportStanzas and ExportSeen) into the database, in
// its transaction tx, a batch a call. Rows go in as they are, without the
// counters: Recount brings every counter in line with the rows once all
// are in. A row the database already has is left as it is.

// ReserveSeqs takes n stanza ids for stanzas moved from elsewhere and
// returns the offset to add to theirs (1 to n): the last id the database
// issued, so that they never meet ids it issued or issues later, and a
// source's own ids are kept when the database had none. It takes the
// queue's lock until tx ends.
func ReserveSeqs(ctx context.Context, tx pgx.Tx, n uint64) (offset int64, err error) {
	st, err := lockState(ctx, tx)
	if err != nil {
		return 0, err
	}
	offset = st.lastSeq
	_, err = tx.Exec(ctx, `UPDATE relay_state SET last_seq = last_seq + $1`, int64(n))
	return offset, err
}

// ImportStanzas writes stanzas and their entries, their ids shifted by
// offset (ReserveSeqs), and returns how many stanzas and entries were
// new. Each stanza keeps its sender and acceptance time, so a
// recipient's entries drain in the order they had, with the delay stamps
// they had.
func ImportStanzas(ctx context.Context, tx pgx.Tx, stanzas []offline.Stored, offset int64) (newStanzas, newEntries int64, err error) {
	var (
		ids, accepted, sizes []int64
		holders              []int32
		senders, accounts    []string
		bodies               [][]byte
		eRcpt                []string
		eSeq, eAccepted      []int64
		eUnseen              []bool
	)
	for _, s := range stanzas {
		id, at := offset+int64(s.Seq), s.Accepted.UnixNano()
		ids, accepted, sizes = append(ids, id), append(accepted, at), append(sizes, int64(len(s.Stanza)))
		holders = append(holders, int32(len(s.Recipients)))
		senders, accounts = append(senders, s.Sender), append(accounts, offline.Account(s.Sender))
		bodies = append(bodies, s.Stanza)
		for i, r := range s.Recipients {
			eRcpt, eSeq, eAccepted, eUnseen = append(eRcpt, r), append(eSeq, id), append(eAccepted, at), append(eUnseen, s.Unseen[i])
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO relay_stanzas (id, sender, account, accepted, size, holders, stanza)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::bytea[])
		ON CONFLICT (id) DO NOTHING`, ids, senders, accounts, accepted, sizes, holders, bodies).
		Exec(func(tag pgconn.CommandTag) error { newStanzas = tag.RowsAffected(); return nil })
	b.Queue(`INSERT INTO relay_entries (recipient, seq, accepted, unseen)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bool[])
		ON CONFLICT (recipient, seq) DO NOTHING`, eRcpt, eSeq, eAccepted, eUnseen).
		Exec(func(tag pgconn.CommandTag) error { newEntries = tag.RowsAffected(); return nil })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, fmt.Errorf("pgqueue: importing stanzas: %w", err)
	}
	return newStanzas, newEntries, nil
}

// ImportSeen adds recipients to the seen set and returns how many were
// new to it; a recipient seen already keeps its time.
func ImportSeen(ctx context.Context, tx pgx.Tx, seen []offline.Seen) (int64, error) {
	rs, at := make([]string, len(seen)), make([]int64, len(seen))
	for i, s := range seen {
		rs[i], at[i] = s.Recipient, s.At.UnixNano()
	}
	tag, err := tx.Exec(ctx, `INSERT INTO relay_recipients AS r (recipient, seen)
		SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (recipient) DO UPDATE SET seen = EXCLUDED.seen WHERE r.seen IS NULL`, rs, at)
	return tag.RowsAffected(), err
}

// Recount sets every counter of the queue (relay_state, the rows of
// relay_recipients, relay_senders and relay_shares, each stanza's
// holders) to what its rows hold, as Enqueue, Drain and Purge keep them,
// under the queue's lock: an entry of a recipient seen is not unseen, a
// stanza without entries goes. It reads the whole queue, in the database.
func Recount(ctx context.Context, tx pgx.Tx) error {
	if _, err := lockState(ctx, tx); err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, sql := range []string{
		`UPDATE relay_entries e SET unseen = false FROM relay_recipients r
			WHERE e.unseen AND r.recipient = e.recipient AND r.seen IS NOT NULL`,
		`DELETE FROM relay_stanzas s WHERE NOT EXISTS (SELECT 1 FROM relay_entries e WHERE e.seq = s.id)`,
		`UPDATE relay_stanzas s SET holders = c.n FROM (SELECT seq, count(*)::int AS n FROM relay_entries GROUP BY seq) c
			WHERE s.id = c.seq AND s.holders <> c.n`,
		`UPDATE relay_recipients SET entries = 0, bytes = 0 WHERE entries <> 0 OR bytes <> 0`,
		`INSERT INTO relay_recipients AS r (recipient, entries, bytes)
			SELECT e.recipient, count(*), sum(s.size) FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq
			GROUP BY e.recipient ORDER BY e.recipient
			ON CONFLICT (recipient) DO UPDATE SET entries = EXCLUDED.entries, bytes = EXCLUDED.bytes`,
		`DELETE FROM relay_recipients WHERE entries = 0 AND seen IS NULL`,
		`DELETE FROM relay_senders`,
		`INSERT INTO relay_senders (account, entries, bytes, unseen_entries, unseen_bytes)
			SELECT s.account, sum(c.n), sum(s.size), sum(c.u), sum(c.u * s.size)
			FROM relay_stanzas s JOIN (SELECT seq, count(*) AS n, count(*) FILTER (WHERE unseen) AS u
				FROM relay_entries GROUP BY seq) c ON c.seq = s.id
			GROUP BY s.account`,
		`DELETE FROM relay_shares`,
		`INSERT INTO relay_shares (recipient, account, entries, bytes)
			SELECT e.recipient, s.account, count(*), sum(s.size) FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq
			GROUP BY e.recipient, s.account`,
		`UPDATE relay_state SET
			entries = (SELECT count(*) FROM relay_entries),
			stanzas = (SELECT count(*) FROM relay_stanzas),
			bytes = (SELECT coalesce(sum(size), 0) FROM relay_stanzas),
			recipients = (SELECT count(DISTINCT recipient) FROM relay_entries),
			unseen_entries = (SELECT count(*) FROM relay_entries WHERE unseen),
			unseen_bytes = (SELECT coalesce(sum(s.size), 0) FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq WHERE e.unseen),
			last_seq = greatest(last_seq, (SELECT coalesce(max(id), 0) FROM relay_stanzas))`,
	} {
		b.Queue(sql)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgqueue: recounting the queue: %w", err)
	}
	return nil
}
