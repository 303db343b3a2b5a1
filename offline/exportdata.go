package offline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What `mediaslot migrate-data` reads of a BoltQueue's file to move the
// queue into another backend (offline/pgqueue's Import): the stanzas with
// the recipients that still hold them, the set of recipients seen, and
// the last stanza id issued. Each call reads one bounded batch in a read
// transaction of its own, resuming after a cursor the caller keeps, so a
// queue of any size is moved in bounded memory.

// Stored is a queued stanza as ExportStanzas reads it: Seq, Sender,
// Accepted and Stanza of its entries (Recipient is empty), and the
// recipients still holding it, sorted, each with whether it was never
// seen.
type Stored struct {
	Entry
	Recipients []string
	Unseen     []bool
}

// Seen is a recipient of the seen set and when it was marked.
type Seen struct {
	Recipient string
	At        time.Time
}

// exportBatchBytes bounds the stanza bytes of one ExportStanzas batch
// (which holds at least one stanza).
const exportBatchBytes = 16 << 20

// ExportStanzas returns up to n of the queue's stored stanzas with ids
// above after, in id order (and no more once their bytes reach 16 MiB),
// each with its holders. A file without a queue has none.
func ExportStanzas(db *bolt.DB, after uint64, n int) ([]Stored, error) {
	var out []Stored
	err := viewQueue(db, func(b buckets) error {
		size := 0
		c := b.stanzas.Cursor()
		for k, v := c.Seek(idKey(after + 1)); k != nil && len(out) < n && size < exportBatchBytes; k, v = c.Next() {
			id := binary.BigEndian.Uint64(k)
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("offline: stanza %d: %w", id, err)
			}
			e.Seq = id
			s := Stored{Entry: e}
			hc := b.holders.Cursor()
			for hk, _ := hc.Seek(k); hk != nil && bytes.HasPrefix(hk, k); hk, _ = hc.Next() {
				r := string(hk[len(k):])
				s.Recipients = append(s.Recipients, r)
				s.Unseen = append(s.Unseen, !b.isSeen(r))
			}
			if len(s.Recipients) == 0 {
				continue // delivered to all; its record outlived them
			}
			out = append(out, s)
			size += len(e.Stanza)
		}
		return nil
	})
	return out, err
}

// ExportSeen returns up to n recipients of the seen set that sort after
// after, in order.
func ExportSeen(db *bolt.DB, after string, n int) ([]Seen, error) {
	var out []Seen
	err := viewQueue(db, func(b buckets) error {
		c := b.seen.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < n; k, v = c.Next() {
			var at time.Time
			if len(v) == 8 {
				at = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			}
			out = append(out, Seen{Recipient: string(k), At: at})
		}
		return nil
	})
	return out, err
}

// LastSeq returns the last stanza id the queue in db issued: the ids of
// its stanzas are at most that.
func LastSeq(db *bolt.DB) (uint64, error) {
	var seq uint64
	err := db.View(func(tx *bolt.Tx) error {
		if root := tx.Bucket(bucketOffline); root != nil {
			seq = root.Sequence()
		}
		return nil
	})
	return seq, err
}

// viewQueue runs fn on the queue's buckets in a read transaction; in a
// file without a queue it runs nothing.
func viewQueue(db *bolt.DB, fn func(b buckets) error) error {
	return db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOffline) == nil {
			return nil
		}
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}
