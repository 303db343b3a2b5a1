package pgqueue

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"mediaslot/offline"
)

// state is the row of relay_state, locked by a writing transaction,
// changed in memory as it goes and written back by save.
type state struct {
	lastSeq, entries, stanzas, bytes, recipients, unseenEntries, unseenBytes int64
}

// lockState locks relay_state for the rest of tx: every writer takes it
// first, so writers take turns and never deadlock.
func lockState(ctx context.Context, tx pgx.Tx) (*state, error) {
	st := &state{}
	err := tx.QueryRow(ctx, `SELECT last_seq, entries, stanzas, bytes, recipients, unseen_entries, unseen_bytes
		FROM relay_state FOR UPDATE`).
		Scan(&st.lastSeq, &st.entries, &st.stanzas, &st.bytes, &st.recipients, &st.unseenEntries, &st.unseenBytes)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: locking the queue: %w", err)
	}
	return st, nil
}

func (st *state) save(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	st.queueSave(b)
	return tx.SendBatch(ctx, b).Close()
}

// queueSave adds the writing back of st to b, for a transaction whose last
// round trip b is.
func (st *state) queueSave(b *pgx.Batch) {
	b.Queue(`UPDATE relay_state SET last_seq = $1, entries = $2, stanzas = $3, bytes = $4,
		recipients = $5, unseen_entries = $6, unseen_bytes = $7`,
		st.lastSeq, st.entries, st.stanzas, st.bytes, st.recipients, st.unseenEntries, st.unseenBytes)
}

// delta is a change of a counter.
type delta struct{ entries, bytes int64 }

// senderDelta is a change of a row of relay_senders.
type senderDelta struct{ all, unseen delta }

// shareKey names a row of relay_shares.
type shareKey struct{ recipient, account string }

// remove deletes the entries of relay_entries e that cond selects (with
// args), and the stanzas whose last holders they were, and takes them off
// every counter, in one statement for the deletion and one round trip for
// the counters. An entry already gone (purged while a Drain delivered it)
// is simply not selected, so nothing is subtracted twice. It returns how
// many entries it deleted, and of how many stanzas.
func (st *state) remove(ctx context.Context, tx pgx.Tx, cond string, args ...any) (entries, stanzas int, err error) {
	rows, err := tx.Query(ctx, `DELETE FROM relay_entries e USING relay_stanzas s
		WHERE s.id = e.seq AND (`+cond+`)
		RETURNING e.recipient, e.seq, e.unseen, s.size, s.account, s.holders`, args...)
	if err != nil {
		return 0, 0, fmt.Errorf("pgqueue: deleting entries: %w", err)
	}
	type stanza struct {
		removed, holders int32
		size             int64
		account          string
	}
	byStanza := map[int64]*stanza{}
	byRecipient := map[string]*delta{}
	bySender := map[string]*senderDelta{}
	byShare := map[shareKey]*delta{}
	for rows.Next() {
		var (
			r, account string
			seq, size  int64
			unseen     bool
			holders    int32
		)
		if err := rows.Scan(&r, &seq, &unseen, &size, &account, &holders); err != nil {
			rows.Close()
			return 0, 0, err
		}
		entries++
		s := byStanza[seq]
		if s == nil {
			s = &stanza{holders: holders, size: size, account: account}
			byStanza[seq] = s
		}
		s.removed++
		add(byRecipient, r, 1, size)
		add(byShare, shareKey{r, account}, 1, size)
		f := bySender[account]
		if f == nil {
			f = &senderDelta{}
			bySender[account] = f
		}
		f.all.entries++
		st.entries--
		if unseen {
			f.unseen.entries++
			f.unseen.bytes += size
			st.unseenEntries--
			st.unseenBytes -= size
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("pgqueue: deleting entries: %w", err)
	}
	if entries == 0 {
		return 0, 0, nil
	}

	var keep, drop []int64
	var keepRemoved []int32
	for id, s := range byStanza {
		if s.removed < s.holders {
			keep = append(keep, id)
			keepRemoved = append(keepRemoved, s.removed)
			continue
		}
		drop = append(drop, id)
		st.stanzas--
		st.bytes -= s.size
		bySender[s.account].all.bytes += s.size
	}
	b := &pgx.Batch{}
	if len(keep) > 0 {
		b.Queue(`UPDATE relay_stanzas s SET holders = s.holders - d.n
			FROM unnest($1::bigint[], $2::int[]) d(id, n) WHERE s.id = d.id`, keep, keepRemoved)
	}
	if len(drop) > 0 {
		b.Queue(`DELETE FROM relay_stanzas WHERE id = ANY($1)`, drop)
	}
	rs, re, rb := columns(byRecipient)
	b.Queue(`UPDATE relay_recipients r SET entries = r.entries - d.e, bytes = r.bytes - d.b
		FROM unnest($1::text[], $2::bigint[], $3::bigint[]) d(r, e, b) WHERE r.recipient = d.r
		RETURNING r.entries`, rs, re, rb).Query(func(rows pgx.Rows) error {
		var n int64
		_, err := pgx.ForEachRow(rows, []any{&n}, func() error {
			if n == 0 {
				st.recipients--
			}
			return nil
		})
		return err
	})
	b.Queue(`DELETE FROM relay_recipients WHERE recipient = ANY($1) AND entries = 0 AND seen IS NULL`, rs)
	var fa []string
	var fe, fb, fue, fub []int64
	for a, d := range bySender {
		fa = append(fa, a)
		fe, fb = append(fe, d.all.entries), append(fb, d.all.bytes)
		fue, fub = append(fue, d.unseen.entries), append(fub, d.unseen.bytes)
	}
	b.Queue(`UPDATE relay_senders f SET entries = f.entries - d.e, bytes = f.bytes - d.b,
			unseen_entries = f.unseen_entries - d.ue, unseen_bytes = f.unseen_bytes - d.ub
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) d(a, e, b, ue, ub)
		WHERE f.account = d.a`, fa, fe, fb, fue, fub)
	b.Queue(`DELETE FROM relay_senders WHERE account = ANY($1) AND entries = 0`, fa)
	var pr, pa []string
	var pe, pb []int64
	for k, d := range byShare {
		pr, pa = append(pr, k.recipient), append(pa, k.account)
		pe, pb = append(pe, d.entries), append(pb, d.bytes)
	}
	b.Queue(`UPDATE relay_shares p SET entries = p.entries - d.e, bytes = p.bytes - d.b
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) d(r, a, e, b)
		WHERE p.recipient = d.r AND p.account = d.a`, pr, pa, pe, pb)
	b.Queue(`DELETE FROM relay_shares p USING unnest($1::text[], $2::text[]) d(r, a)
		WHERE p.recipient = d.r AND p.account = d.a AND p.entries = 0`, pr, pa)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, fmt.Errorf("pgqueue: updating counters after deleting entries: %w", err)
	}
	return entries, len(byStanza), nil
}

// add adds one entry of size bytes to the delta of k.
func add[K comparable](m map[K]*delta, k K, entries, size int64) {
	d := m[k]
	if d == nil {
		d = &delta{}
		m[k] = d
	}
	d.entries += entries
	d.bytes += size
}

// columns returns the keys and values of m as the columns of unnest.
func columns(m map[string]*delta) (keys []string, entries, bytes []int64) {
	for k, d := range m {
		keys = append(keys, k)
		entries = append(entries, d.entries)
		bytes = append(bytes, d.bytes)
	}
	return keys, entries, bytes
}

// markSeen adds recipients to the seen set, and takes the entries of
// those not in it yet off the unseen counters, theirs and their senders'.
func (st *state) markSeen(ctx context.Context, tx pgx.Tx, recipients []string, now time.Time) error {
	slices.Sort(recipients)
	recipients = slices.Compact(recipients)
	rows, err := tx.Query(ctx, `INSERT INTO relay_recipients (recipient, seen) SELECT unnest($1::text[]), $2
		ON CONFLICT (recipient) DO UPDATE SET seen = EXCLUDED.seen WHERE relay_recipients.seen IS NULL
		RETURNING recipient, entries, bytes`, recipients, now.UnixNano())
	if err != nil {
		return fmt.Errorf("pgqueue: marking recipients seen: %w", err)
	}
	var newly []string
	var r string
	var e, n int64
	_, err = pgx.ForEachRow(rows, []any{&r, &e, &n}, func() error {
		if e > 0 {
			newly = append(newly, r)
			st.unseenEntries -= e
			st.unseenBytes -= n
		}
		return nil
	})
	if err != nil || len(newly) == 0 {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE relay_senders f SET unseen_entries = f.unseen_entries - x.e, unseen_bytes = f.unseen_bytes - x.b
		FROM (SELECT account, sum(entries)::bigint e, sum(bytes)::bigint b FROM relay_shares
			WHERE recipient = ANY($1) GROUP BY account) x
		WHERE f.account = x.account`, newly)
	b.Queue(`UPDATE relay_entries SET unseen = false WHERE recipient = ANY($1) AND unseen`, newly)
	return tx.SendBatch(ctx, b).Close()
}

// recipientRow is a row of relay_recipients as enqueue changes it.
type recipientRow struct {
	seen  bool
	c     offline.Counter
	dirty bool
}

// senderRow is a row of relay_senders as enqueue changes it.
type senderRow struct {
	all, unseen offline.Counter
	dirty       bool
}

// enqueue stores the messages of ops that the caps admit, in order, each
// checked against the counters as the ones before it left them, and sets
// the refusal of the others. It reads the counters in one round trip and
// writes all rows, and st, in another: it must come last in its
// transaction, and reports whether it saved st.
func (st *state) enqueue(ctx context.Context, tx pgx.Tx, l offline.Limits, ops []*op, now time.Time) (saved bool, err error) {
	rcpts := map[string]*recipientRow{}
	senders := map[string]*senderRow{}
	shares := map[shareKey]*offline.Counter{}
	for _, o := range ops {
		senders[o.msg.Account] = &senderRow{}
		for _, r := range o.msg.Recipients {
			rcpts[r] = &recipientRow{}
			shares[shareKey{r, o.msg.Account}] = &offline.Counter{}
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT recipient, seen IS NOT NULL, entries, bytes FROM relay_recipients WHERE recipient = ANY($1)`,
		keys(rcpts)).Query(func(rows pgx.Rows) error {
		var r string
		var row recipientRow
		_, err := pgx.ForEachRow(rows, []any{&r, &row.seen, &row.c.Entries, &row.c.Bytes}, func() error {
			*rcpts[r] = row
			return nil
		})
		return err
	})
	b.Queue(`SELECT account, entries, bytes, unseen_entries, unseen_bytes FROM relay_senders WHERE account = ANY($1)`,
		keys(senders)).Query(func(rows pgx.Rows) error {
		var a string
		var row senderRow
		_, err := pgx.ForEachRow(rows, []any{&a, &row.all.Entries, &row.all.Bytes, &row.unseen.Entries, &row.unseen.Bytes}, func() error {
			*senders[a] = row
			return nil
		})
		return err
	})
	var pr, pa []string
	for k := range shares {
		pr, pa = append(pr, k.recipient), append(pa, k.account)
	}
	b.Queue(`SELECT p.recipient, p.account, p.entries, p.bytes FROM relay_shares p
		JOIN unnest($1::text[], $2::text[]) d(r, a) ON p.recipient = d.r AND p.account = d.a`, pr, pa).
		Query(func(rows pgx.Rows) error {
			var k shareKey
			var c offline.Counter
			_, err := pgx.ForEachRow(rows, []any{&k.recipient, &k.account, &c.Entries, &c.Bytes}, func() error {
				*shares[k] = c
				return nil
			})
			return err
		})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("pgqueue: reading the counters: %w", err)
	}

	var (
		ids, accepted, sizes    []int64
		holders                 []int32
		sendersCol, accountsCol []string
		stanzas                 [][]byte
		eRcpt                   []string
		eSeq, eAccepted         []int64
		eUnseen                 []bool
		stamp                   = now.UnixNano()
	)
	for _, o := range ops {
		m := o.msg
		size := uint64(len(m.Stanza))
		f := senders[m.Account]
		u := offline.Usage{
			Recipients: make([]offline.RecipientUsage, len(m.Recipients)),
			Sender:     f.all,
			UnseenBy:   f.unseen,
			Unseen:     offline.Counter{Entries: uint64(st.unseenEntries), Bytes: uint64(st.unseenBytes)},
			Total:      offline.Counter{Entries: uint64(st.entries), Bytes: uint64(st.bytes)},
		}
		for i, r := range m.Recipients {
			u.Recipients[i] = offline.RecipientUsage{Seen: rcpts[r].seen, Queue: rcpts[r].c, Share: *shares[shareKey{r, m.Account}]}
		}
		if o.refused = l.Check(*m, u); o.refused != nil {
			continue
		}
		st.lastSeq++
		st.stanzas++
		st.bytes += int64(size)
		ids = append(ids, st.lastSeq)
		sendersCol, accountsCol = append(sendersCol, m.Sender), append(accountsCol, m.Account)
		accepted, sizes = append(accepted, stamp), append(sizes, int64(size))
		holders = append(holders, int32(len(m.Recipients)))
		stanzas = append(stanzas, m.Stanza)
		f.dirty = true
		f.all.Entries += uint64(len(m.Recipients))
		f.all.Bytes += size
		for _, r := range m.Recipients {
			rc := rcpts[r]
			eRcpt, eSeq, eAccepted, eUnseen = append(eRcpt, r), append(eSeq, st.lastSeq), append(eAccepted, stamp), append(eUnseen, !rc.seen)
			sh := shares[shareKey{r, m.Account}]
			sh.Entries++
			sh.Bytes += size
			if !rc.seen {
				f.unseen.Entries++
				f.unseen.Bytes += size
				st.unseenEntries++
				st.unseenBytes += int64(size)
			}
			if rc.c.Entries == 0 {
				st.recipients++
			}
			rc.c.Entries++
			rc.c.Bytes += size
			rc.dirty = true
			st.entries++
		}
	}
	if len(ids) == 0 {
		return false, nil
	}

	b = &pgx.Batch{}
	b.Queue(`INSERT INTO relay_stanzas (id, sender, account, accepted, size, holders, stanza)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::bytea[])`,
		ids, sendersCol, accountsCol, accepted, sizes, holders, stanzas)
	b.Queue(`INSERT INTO relay_entries (recipient, seq, accepted, unseen)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bool[])`, eRcpt, eSeq, eAccepted, eUnseen)
	var rr []string
	var re, rb []int64
	for _, r := range keys(rcpts) {
		if row := rcpts[r]; row.dirty {
			rr, re, rb = append(rr, r), append(re, int64(row.c.Entries)), append(rb, int64(row.c.Bytes))
		}
	}
	b.Queue(`INSERT INTO relay_recipients (recipient, entries, bytes)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
		ON CONFLICT (recipient) DO UPDATE SET entries = EXCLUDED.entries, bytes = EXCLUDED.bytes`, rr, re, rb)
	var fa []string
	var fe, fb, fue, fub []int64
	for _, a := range keys(senders) {
		if f := senders[a]; f.dirty {
			fa = append(fa, a)
			fe, fb = append(fe, int64(f.all.Entries)), append(fb, int64(f.all.Bytes))
			fue, fub = append(fue, int64(f.unseen.Entries)), append(fub, int64(f.unseen.Bytes))
		}
	}
	b.Queue(`INSERT INTO relay_senders (account, entries, bytes, unseen_entries, unseen_bytes)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
		ON CONFLICT (account) DO UPDATE SET entries = EXCLUDED.entries, bytes = EXCLUDED.bytes,
			unseen_entries = EXCLUDED.unseen_entries, unseen_bytes = EXCLUDED.unseen_bytes`, fa, fe, fb, fue, fub)
	pr, pa = pr[:0], pa[:0]
	var pe, pb []int64
	for k, c := range shares {
		if c.Entries > 0 {
			pr, pa = append(pr, k.recipient), append(pa, k.account)
			pe, pb = append(pe, int64(c.Entries)), append(pb, int64(c.Bytes))
		}
	}
	b.Queue(`INSERT INTO relay_shares (recipient, account, entries, bytes)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
		ON CONFLICT (recipient, account) DO UPDATE SET entries = EXCLUDED.entries, bytes = EXCLUDED.bytes`, pr, pa, pe, pb)
	st.queueSave(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("pgqueue: storing stanzas: %w", err)
	}
	return true, nil
}

func keys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	return k
}
