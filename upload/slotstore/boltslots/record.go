package boltslots

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/upload/slotstore"
)

// The slot state in the shared bbolt file. Every change of a slot goes
// through the transitions below (issued, completed, forgotten, expired),
// which keep the record, its indexes and the quota counters consistent in
// one transaction. The layout is that of every earlier version's files
// (TestOpensEarlierFile).
var (
	bucketSlots   = []byte("slots")   // id -> record (JSON)
	bucketPending = []byte("pending") // BE(PUT deadline) id -> nil: slots waiting for their upload
	bucketExpiry  = []byte("expiry")  // BE(delete after) id -> nil: stored files that expire
	bucketUsage   = []byte("usage")   // "u\x00"+owner, "d\x00"+domain, "g" -> BE stored bytes
	bucketDaily   = []byte("daily")   // owner \x00 BE(dailyStamp) -> BE bytes: uploads of the last 24 h, by minute
	bucketFiles   = []byte("files")   // owner \x00 BE(delete after) id -> BE size: an owner's stored files
)

var allBuckets = [][]byte{bucketSlots, bucketPending, bucketExpiry, bucketUsage, bucketDaily, bucketFiles}

type record = slotstore.Record

func getRecord(tx *bolt.Tx, id string) (record, error) {
	v := tx.Bucket(bucketSlots).Get([]byte(id))
	if v == nil {
		return record{}, slotstore.ErrNotFound
	}
	var r record
	err := json.Unmarshal(v, &r)
	return r, err
}

// putRecord stores r as JSON. json.Marshal is the one encoder: the data
// files written by earlier versions' hand-written encoder are the same
// bytes (TestRecordEncoding).
func putRecord(tx *bolt.Tx, id string, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSlots).Put([]byte(id), v)
}

// timeKey is a big-endian Unix time followed by rest, so keys sort by time.
func timeKey(t time.Time, rest ...string) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

// ownerKey is owner \x00 BE(t) id, so an owner's entries sort by time.
func ownerKey(owner string, t uint64, id string) []byte {
	k := append([]byte(owner), 0)
	k = binary.BigEndian.AppendUint64(k, t)
	return append(k, id...)
}

// never is the key time of files that are never deleted.
const never = 1<<63 - 1

func deleteAfterKey(r record) uint64 {
	if r.DeleteAfter.IsZero() {
		return never
	}
	return uint64(r.DeleteAfter.Unix())
}

func usageKeys(owner string) [][]byte {
	return [][]byte{[]byte("u\x00" + owner), []byte("d\x00" + slotstore.DomainOf(owner)), []byte("g")}
}

func getUint(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func addUsage(tx *bolt.Tx, owner string, delta int64) error {
	b := tx.Bucket(bucketUsage)
	for _, k := range usageKeys(owner) {
		if err := b.Put(k, sizeValue(max(0, getUint(b.Get(k))+delta))); err != nil {
			return err
		}
	}
	return nil
}

func sizeValue(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// dailyKey is the daily bucket's key of owner's uploads at t. Entries of
// earlier versions, one an upload with its slot id after the time, are
// read the same way and leave with the window.
func dailyKey(owner string, t time.Time) []byte {
	return ownerKey(owner, uint64(t.UnixNano()), "")
}

// issued records a new slot waiting for its upload.
func issued(tx *bolt.Tx, id string, r record) error {
	if err := putRecord(tx, id, r); err != nil {
		return err
	}
	return tx.Bucket(bucketPending).Put(timeKey(r.Expires, id), nil)
}

// completed marks a pending slot's upload as stored and counts it.
func completed(tx *bolt.Tx, id string, now time.Time, servedType string) (record, error) {
	r, err := getRecord(tx, id)
	if err != nil || r.Complete {
		return r, err
	}
	r.Complete, r.Stored, r.StoredType = true, now, servedType
	if err := putRecord(tx, id, r); err != nil {
		return r, err
	}
	if err := tx.Bucket(bucketPending).Delete(timeKey(r.Expires, id)); err != nil {
		return r, err
	}
	if !r.DeleteAfter.IsZero() {
		if err := tx.Bucket(bucketExpiry).Put(timeKey(r.DeleteAfter, id), nil); err != nil {
			return r, err
		}
	}
	if err := addUsage(tx, r.Owner, r.Size); err != nil {
		return r, err
	}
	if err := tx.Bucket(bucketFiles).Put(ownerKey(r.Owner, deleteAfterKey(r), id), sizeValue(r.Size)); err != nil {
		return r, err
	}
	daily := tx.Bucket(bucketDaily)
	// Drop this owner's entries that left the 24-hour window: each owner's
	// history is pruned when they upload again.
	prefix := append([]byte(r.Owner), 0)
	limit := dailyKey(r.Owner, now.Add(-slotstore.DailyWindow))
	c := daily.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, limit) < 0; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return r, err
		}
	}
	k := dailyKey(r.Owner, slotstore.DailyStamp(now))
	return r, daily.Put(k, sizeValue(getUint(daily.Get(k))+r.Size))
}

// forgotten removes a slot that never got its upload.
func forgotten(tx *bolt.Tx, id string) error {
	r, err := getRecord(tx, id)
	if err != nil || r.Complete {
		return nil
	}
	if err := tx.Bucket(bucketPending).Delete(timeKey(r.Expires, id)); err != nil {
		return err
	}
	return tx.Bucket(bucketSlots).Delete([]byte(id))
}

// expired removes a stored file's record and uncounts it (the bytes in the
// last 24 hours stay counted: that quota is about uploading).
func expired(tx *bolt.Tx, id string) error {
	r, err := getRecord(tx, id)
	if err != nil || !r.Complete {
		return nil
	}
	if !r.DeleteAfter.IsZero() {
		if err := tx.Bucket(bucketExpiry).Delete(timeKey(r.DeleteAfter, id)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketFiles).Delete(ownerKey(r.Owner, deleteAfterKey(r), id)); err != nil {
		return err
	}
	if err := addUsage(tx, r.Owner, -r.Size); err != nil {
		return err
	}
	return tx.Bucket(bucketSlots).Delete([]byte(id))
}

// due lists up to n ids of an index whose time key is before t.
func due(tx *bolt.Tx, bucket []byte, t time.Time, n int) []string {
	var ids []string
	limit := timeKey(t)
	c := tx.Bucket(bucket).Cursor()
	for k, _ := c.First(); k != nil && len(ids) < n && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
		ids = append(ids, string(k[8:]))
	}
	return ids
}
