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

// Purge deletes the stanzas accepted before now minus the TTL and returns
// how many entries that took off recipients' queues. It reads the time
// index only up to the first stanza it keeps, and never a stanza, so
// running it often is cheap. Stanzas are deleted in transactions of up to
// 1024, fewer when their recipients' entries are scattered through a large
// file; if ctx ends or a transaction fails, those deleted so far stay
// deleted and are counted. Drain does not look at the TTL: a stanza is
// delivered until Purge has removed it.
func (q *Queue) Purge(ctx context.Context, now time.Time) (int, error) {
	limit := timeKey(now.Add(-q.limits.TTL), 0)
	purged := 0
	for {
		removed := 0
		more := false
		err := q.w.Update(ctx, func(tx *bolt.Tx) error {
			removed = 0 // the Writer may run this function again
			q.mapped.Trim(tx)
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			var expired []Entry
			expired, more = expiredEntries(b, limit)
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
		if !more || removed == 0 {
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
