package offline

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// purgeBatch bounds the stanzas one Purge transaction deletes, so a large
// expiry does not hold the Writer, and every Enqueue waiting on it, for long.
const purgeBatch = 1024

// Purge implements Queue.Purge. It reads the time indexes only up to the first
// entry it keeps, and never a stanza, so running it often is cheap.
// Stanzas are deleted in transactions of up to 1024, fewer when their
// recipients' entries are scattered through a large file; if ctx ends or a
// transaction fails, those deleted so far stay deleted and are counted.
// Drain checks the TTL too, so Purge is what frees the disk, not what
// bounds the age of a delivered stanza.
func (q *BoltQueue) Purge(ctx context.Context, now time.Time) (int, error) {
	old := timeKey(now.Add(-q.limits.TTL), 0)
	purged, err := q.purge(ctx, func(b buckets) ([]Entry, int, bool, error) {
		expired, more := expiredEntries(b, old)
		return expired, 0, more, nil
	})
	if err != nil {
		return purged, err
	}
	unseen := timeKey(now.Add(-q.limits.UnseenTTL), 0)
	n, err := q.purge(ctx, func(b buckets) ([]Entry, int, bool, error) {
		return expiredUnseen(b, unseen)
	})
	return purged + n, err
}

// purge removes what collect finds, in transactions, until it finds
// nothing more. collect returns the entries to remove, how many keys it
// deleted itself (progress, though no entry), and whether more may follow.
func (q *BoltQueue) purge(ctx context.Context, collect func(buckets) (expired []Entry, cleaned int, more bool, err error)) (int, error) {
	purged := 0
	for {
		removed, cleaned := 0, 0
		more := false
		err := q.w.Update(ctx, func(tx *bolt.Tx) error {
			removed = 0 // the Writer may run this function again
			q.mapped.Trim(tx)
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			var expired []Entry
			if expired, cleaned, more, err = collect(b); err != nil {
				return err
			}
			tot := b.totals()
			for _, e := range expired {
				prefix, err := recipientPrefix(e.Recipient)
				if err != nil {
					return err
				}
				if err := b.removeEntry(&tot, e.Recipient, prefix, e.Seq, e.Accepted); err != nil {
					return err
				}
				// Like forget, stop where the budget of mapped pages
				// runs out; the next transaction finds the rest.
				if removed++; removed%checkEvery == 0 && removed < len(expired) && q.mapped.Over() {
					more = true
					break
				}
			}
			return b.setTotals(tot)
		})
		if err != nil {
			return purged, err
		}
		purged += removed
		if !more || removed+cleaned == 0 {
			return purged, nil
		}
	}
}

// expiredEntries returns the entries, without sender or stanza, of up to
// purgeBatch stanzas whose time key sorts before limit, and whether more
// may follow. They are collected before any is deleted, as deleting under
// a bbolt cursor can skip keys.
func expiredEntries(b buckets, limit []byte) (expired []Entry, more bool) {
	c := b.byTime.Cursor()
	h := b.holders.Cursor()
	stanzas := 0
	for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
		if stanzas == purgeBatch {
			return expired, true
		}
		stanzas++
		id := k[8:16]
		accepted := time.Unix(0, int64(binary.BigEndian.Uint64(k)))
		for hk, _ := h.Seek(id); hk != nil && bytes.HasPrefix(hk, id); hk, _ = h.Next() {
			expired = append(expired, Entry{
				Recipient: string(hk[8:]),
				Seq:       binary.BigEndian.Uint64(id),
				Accepted:  accepted,
			})
		}
	}
	return expired, false
}

// expiredUnseen returns the entries, without sender or stanza, of up to
// purgeBatch keys of the unseen index that sort before limit and whose
// recipient is still unseen, and whether more may follow. The keys of
// recipients seen since are deleted here, and counted in cleaned.
func expiredUnseen(b buckets, limit []byte) (expired []Entry, cleaned int, more bool, err error) {
	var stale [][]byte
	c := b.unseen.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
		if len(expired)+len(stale) == purgeBatch {
			more = true
			break
		}
		r := string(k[16:])
		if b.isSeen(r) {
			stale = append(stale, bytes.Clone(k))
			continue
		}
		expired = append(expired, Entry{
			Recipient: r,
			Seq:       binary.BigEndian.Uint64(k[8:16]),
			Accepted:  time.Unix(0, int64(binary.BigEndian.Uint64(k))),
		})
	}
	for _, k := range stale {
		if err := b.unseen.Delete(k); err != nil {
			return nil, 0, false, err
		}
	}
	return expired, len(stale), more, nil
}
