package boltslots

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/upload/slotstore"
)

// What `mediaslot migrate-data` reads of a file's slot state to move it
// into another backend (pgslots' Import): the records, and the uploads of
// the last 24 hours by owner and minute. The other buckets (pending,
// expiry, files, usage) are indexes and sums of the records, which the
// target derives from them. Each call reads one bounded batch in a read
// transaction of its own, resuming after a key the caller keeps.

// ExportSlots returns up to n slot records whose ids sort after after, in
// id order. A file without slot records has none.
func ExportSlots(db *bolt.DB, after string, n int) ([]slotstore.Slot, error) {
	var out []slotstore.Slot
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSlots)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		for ; k != nil && len(out) < n; k, _ = c.Next() {
			r, err := getRecord(tx, string(k))
			if err != nil {
				return fmt.Errorf("slot %q: %w", k, err)
			}
			out = append(out, slotstore.Slot{ID: string(k), Record: r})
		}
		return nil
	})
	return out, err
}

// ExportDaily returns the daily entries whose keys sort after after (a
// key it returned, or nil to start), about n of them, and the key to go on
// after. Entries of earlier versions, one an upload, are summed by owner
// and minute, as DailyStamp counts them now; the entries of one owner and
// minute are adjacent, and never split between calls.
func ExportDaily(db *bolt.DB, after []byte, n int) (rows []slotstore.DailyUploads, last []byte, err error) {
	last = after
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaily)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+9 {
				return fmt.Errorf("daily entry %q: not owner, 0, time", k)
			}
			d := slotstore.DailyUploads{Owner: string(k[:i]), Stamp: slotstore.DailyStamp(time.Unix(0, int64(binary.BigEndian.Uint64(k[i+1:])))), Bytes: getUint(v)}
			if m := len(rows); m > 0 && rows[m-1].Owner == d.Owner && rows[m-1].Stamp.Equal(d.Stamp) {
				rows[m-1].Bytes = slotstore.Sum(rows[m-1].Bytes, d.Bytes)
			} else if m >= n {
				break
			} else {
				rows = append(rows, d)
			}
			last = bytes.Clone(k)
		}
		return nil
	})
	return rows, last, err
}
