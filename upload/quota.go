package upload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkQuota refuses a request that would take its owner, their domain or
// the whole service over a quota, saying when it would pass: for the daily
// quota when enough of the last 24 hours' uploads leave the window, for the
// stored quotas when enough files expire. Only completed uploads count.
func (s *Service) checkQuota(tx *bolt.Tx, r Request, now time.Time) *Refusal {
	q := s.opt.Quota
	if q.DailyBytes > 0 {
		if ref := dailyQuota(tx, r, q.DailyBytes, now); ref != nil {
			return ref
		}
	}
	usage := tx.Bucket(bucketUsage)
	stored := func(k []byte) int64 {
		if v := usage.Get(k); len(v) == 8 {
			return int64(binary.BigEndian.Uint64(v))
		}
		return 0
	}
	keys := usageKeys(r.Owner)
	for i, limit := range []int64{q.UserBytes, q.DomainBytes, q.TotalBytes} {
		if limit <= 0 {
			continue
		}
		used := stored(keys[i])
		if used+r.Size <= limit {
			continue
		}
		what := [...]string{"Your storage quota", "The storage quota of " + domainOf(r.Owner), "The upload service's storage"}[i]
		need := used + r.Size - limit
		var at time.Time
		if i == 0 {
			at = freedOwner(tx, r.Owner, need)
		} else {
			at = freedGlobal(tx, need, i == 1, domainOf(r.Owner))
		}
		return quotaRefusal(at, "%s of %s is full (%s used)", what, human(limit), human(used))
	}
	return nil
}

func dailyQuota(tx *bolt.Tx, r Request, limit int64, now time.Time) *Refusal {
	prefix := append([]byte(r.Owner), 0)
	from := ownerKey(r.Owner, uint64(now.Add(-24*time.Hour).UnixNano()), "")
	var sizes []int64
	var stamps []uint64
	var used int64
	c := tx.Bucket(bucketDaily).Cursor()
	for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		n := int64(binary.BigEndian.Uint64(v))
		used += n
		sizes = append(sizes, n)
		stamps = append(stamps, binary.BigEndian.Uint64(k[len(prefix):]))
	}
	if used+r.Size <= limit {
		return nil
	}
	var at time.Time
	if r.Size <= limit {
		// the oldest uploads leave the window first
		need := used + r.Size - limit
		for i, n := range sizes {
			need -= n
			if need <= 0 {
				at = time.Unix(0, int64(stamps[i])).Add(24 * time.Hour)
				break
			}
		}
	}
	return quotaRefusal(at, "Daily upload quota of %s reached (%s in the last 24 hours)", human(limit), human(used))
}

// freedOwner returns when the owner's files that expire first free need bytes.
func freedOwner(tx *bolt.Tx, owner string, need int64) time.Time {
	prefix := append([]byte(owner), 0)
	c := tx.Bucket(bucketFiles).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if need -= int64(binary.BigEndian.Uint64(v)); need <= 0 {
			t := binary.BigEndian.Uint64(k[len(prefix):])
			if t == 1<<63-1 {
				return time.Time{} // only files that never expire
			}
			return time.Unix(int64(t), 0).Add(sweepInterval)
		}
	}
	return time.Time{}
}

// freedGlobal returns when expiring files (of domain, if byDomain) free need bytes.
func freedGlobal(tx *bolt.Tx, need int64, byDomain bool, domain string) time.Time {
	c := tx.Bucket(bucketExpiry).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		r, err := getRecord(tx, string(k[8:]))
		if err != nil || (byDomain && domainOf(r.Owner) != domain) {
			continue
		}
		if need -= r.Size; need <= 0 {
			return r.DeleteAfter.Add(sweepInterval)
		}
	}
	return time.Time{}
}

func quotaRefusal(at time.Time, format string, a ...any) *Refusal {
	text := fmt.Sprintf(format, a...)
	if at.IsZero() {
		text += "; delete files or ask the administrator"
	} else {
		text += fmt.Sprintf("; you can upload again after %s", at.UTC().Format("2006-01-02 15:04 MST"))
	}
	return &Refusal{Reason: OverQuota, Text: text, RetryAt: at}
}

// human writes a byte count the way people read it.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
