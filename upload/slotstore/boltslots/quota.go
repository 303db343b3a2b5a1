package boltslots

import (
	"bytes"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/upload/slotstore"
)

// check returns the first quota that owner's request does not fit, with
// its facts, or nil. held are the bytes pending slots hold against the
// owner's daily and stored quotas (user, domain, total); extra is what
// the request adds to them: its size for a new slot, 0 for a slot that
// already holds its size.
func check(tx *bolt.Tx, owner string, held [3]int64, extra int64, q slotstore.Quota, now time.Time) *slotstore.Over {
	if q.Daily > 0 {
		if o := checkDaily(tx, owner, held[0], extra, q.Daily, now); o != nil {
			return o
		}
	}
	usage := tx.Bucket(bucketUsage)
	keys := usageKeys(owner)
	for i, limit := range []int64{q.User, q.Domain, q.Total} {
		if limit <= 0 {
			continue
		}
		used := getUint(usage.Get(keys[i]))
		total := slotstore.Sum(used, held[i], extra)
		if total <= limit {
			continue
		}
		o := &slotstore.Over{Scope: slotstore.User + slotstore.Scope(i), Limit: limit, Used: used, Held: held[i]}
		if i == 0 {
			o.Freed = freedOwner(tx, owner, total-limit)
		} else {
			o.Freed = freedGlobal(tx, total-limit, i == 1, slotstore.DomainOf(owner))
		}
		return o
	}
	return nil
}

// checkDaily sums the owner's uploads in the last 24 hours, oldest first.
func checkDaily(tx *bolt.Tx, owner string, held, extra, limit int64, now time.Time) *slotstore.Over {
	prefix := append([]byte(owner), 0)
	var sizes []int64
	var stamps []uint64
	var used int64
	c := tx.Bucket(bucketDaily).Cursor()
	for k, v := c.Seek(dailyKey(owner, now.Add(-slotstore.DailyWindow))); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		n := getUint(v)
		used += n
		sizes = append(sizes, n)
		stamps = append(stamps, binary.BigEndian.Uint64(k[len(prefix):]))
	}
	total := slotstore.Sum(used, held, extra)
	if total <= limit {
		return nil
	}
	o := &slotstore.Over{Scope: slotstore.Daily, Limit: limit, Used: used, Held: held}
	// the oldest uploads leave the window first
	need := total - limit
	for i, n := range sizes {
		if need -= n; need <= 0 {
			o.Freed = time.Unix(0, int64(stamps[i])).Add(slotstore.DailyWindow)
			break
		}
	}
	return o
}

// freedOwner returns when the owner's files that expire first free need
// bytes, if the first FreedScan of them do.
func freedOwner(tx *bolt.Tx, owner string, need int64) time.Time {
	prefix := append([]byte(owner), 0)
	c := tx.Bucket(bucketFiles).Cursor()
	n := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < slotstore.FreedScan; k, v = c.Next() {
		n++
		if need -= getUint(v); need <= 0 {
			t := binary.BigEndian.Uint64(k[len(prefix):])
			if t == never {
				return time.Time{} // only files that never expire
			}
			return time.Unix(int64(t), 0)
		}
	}
	return time.Time{}
}

// freedGlobal returns when expiring files (of domain, if byDomain) free
// need bytes, if the first FreedScan files to expire, everybody's, do:
// each is a record to decode (2 µs).
func freedGlobal(tx *bolt.Tx, need int64, byDomain bool, domain string) time.Time {
	c := tx.Bucket(bucketExpiry).Cursor()
	n := 0
	for k, _ := c.First(); k != nil && n < slotstore.FreedScan; k, _ = c.Next() {
		n++
		r, err := getRecord(tx, string(k[8:]))
		if err != nil || (byDomain && slotstore.DomainOf(r.Owner) != domain) {
			continue
		}
		if need -= r.Size; need <= 0 {
			return r.DeleteAfter
		}
	}
	return time.Time{}
}
