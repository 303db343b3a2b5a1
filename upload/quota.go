package upload

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"mediaslot/refusal"

	bolt "go.etcd.io/bbolt"
)

// checkQuota refuses a request that would take its owner, their domain or
// the whole service over a quota, saying when it would pass: for the daily
// quota when enough of the last 24 hours' uploads leave the window, for the
// stored quotas when enough files expire, and when pending uploads are what
// fills it, once their upload windows have closed. Completed uploads count,
// and so do the held bytes of pending slots (see holds); extra is what the
// request adds to them: its size for a new slot, 0 for a slot that already
// holds its size.
func (s *Service) checkQuota(tx *bolt.Tx, r Request, held [3]int64, extra int64, now time.Time) *refusal.Error {
	q := s.opt.Quota
	if q.DailyBytes > 0 {
		if ref := s.dailyQuota(tx, r, held[0], extra, now); ref != nil {
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
		if sum(used, held[i], extra) <= limit {
			continue
		}
		what := [...]string{"Your storage quota", "The storage quota of " + domainOf(r.Owner), "The upload service's storage"}[i]
		need := sum(used, held[i], extra) - limit
		var at time.Time
		if i == 0 {
			at = freedOwner(tx, r.Owner, need)
		} else {
			at = freedGlobal(tx, need, i == 1, domainOf(r.Owner))
		}
		if at.IsZero() && sum(used, extra) <= limit {
			at = s.holdsEnd(now)
		}
		return quotaRefusal(at, "%s of %s is full (%s used%s)", what, human(limit), human(used), pendingText(held[i]))
	}
	return nil
}

func (s *Service) dailyQuota(tx *bolt.Tx, r Request, held, extra int64, now time.Time) *refusal.Error {
	limit := s.opt.Quota.DailyBytes
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
	if sum(used, held, extra) <= limit {
		return nil
	}
	var at time.Time
	if r.Size <= limit {
		// the oldest uploads leave the window first
		need := sum(used, held, extra) - limit
		for i, n := range sizes {
			need -= n
			if need <= 0 {
				at = time.Unix(0, int64(stamps[i])).Add(24 * time.Hour)
				break
			}
		}
		if at.IsZero() && sum(used, extra) <= limit {
			at = s.holdsEnd(now)
		}
	}
	return quotaRefusal(at, "Daily upload quota of %s reached (%s in the last 24 hours%s)", human(limit), human(used), pendingText(held))
}

// sum adds byte counts (none negative), saturating at math.MaxInt64: a
// slot may be as large as max_file_size allows, and a sum that wrapped
// round to a negative number would pass every quota.
func sum(n ...int64) int64 {
	var t int64
	for _, x := range n {
		if x > math.MaxInt64-t {
			return math.MaxInt64
		}
		t += x
	}
	return t
}

// pendingText says how much of a quota pending uploads hold, if any.
func pendingText(held int64) string {
	if held == 0 {
		return ""
	}
	return ", " + human(held) + " in pending uploads"
}

// holdsEnd is when the holds of the slots pending now have ended: their
// upload windows closed, or for direct uploads, the sweeper settled them.
func (s *Service) holdsEnd(now time.Time) time.Time {
	end := now.Add(s.opt.SlotLifetime)
	if s.direct != nil {
		end = end.Add(sweepGrace + sweepInterval)
	}
	return end
}

// freedOwner returns when the owner's files that expire first free need
// bytes, if the first freedScan of them do.
func freedOwner(tx *bolt.Tx, owner string, need int64) time.Time {
	prefix := append([]byte(owner), 0)
	c := tx.Bucket(bucketFiles).Cursor()
	n := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < freedScan; k, v = c.Next() {
		n++
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

// freedScan bounds the files a refusal reads to say when a stored quota
// frees enough: for the domain's or the service's, they are everybody's,
// in the order they expire, and each is a record to decode (2 µs), so a
// request refused by a full domain quota read up to every file of the
// service; for the user's, all of theirs. Past it, the refusal says no
// date.
const freedScan = 10000

// freedGlobal returns when expiring files (of domain, if byDomain) free
// need bytes, if the first freedScan files to expire do.
func freedGlobal(tx *bolt.Tx, need int64, byDomain bool, domain string) time.Time {
	c := tx.Bucket(bucketExpiry).Cursor()
	n := 0
	for k, _ := c.First(); k != nil && n < freedScan; k, _ = c.Next() {
		n++
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

func quotaRefusal(at time.Time, format string, a ...any) *refusal.Error {
	text := fmt.Sprintf(format, a...)
	if at.IsZero() {
		text += "; delete files or ask the administrator"
	} else {
		text += fmt.Sprintf("; you can upload again after %s", at.UTC().Format("2006-01-02 15:04 MST"))
	}
	return &refusal.Error{Kind: refusal.OverQuota, Text: text, RetryAt: at}
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

// holds are the quota reservations of pending slots. A slot holds its size
// against its owner's daily and stored quotas, its domain's and the total
// from the moment it is issued until it is settled: converted into usage
// when its upload is recorded, released when its upload window closes
// unused (a PUT in progress keeps it) or its record is forgotten. Without
// them, slots requested together before any upload all passed.
//
// They live in memory, not in the bbolt file, because Issue answers before
// its record is committed: the check and the reservation happen together
// under mu, and the usage counters they are checked against change only
// through completed and expired, which Issue reads in one snapshot. New
// rebuilds them from the pending records, so files written before holds
// existed work as they are. The one moment both could count a slot is
// while its completion commits: such a hold is marked completing, and a
// check deducts it when its snapshot already shows the slot complete.
type holds struct {
	mu         sync.Mutex
	slots      map[string]*hold // by slot id
	sums       map[string]int64 // by usage key (usageKeys): bytes held
	completing map[string]*hold // completion being committed
	due        holdHeap         // holds that end with their upload window
}

type hold struct {
	id, owner string
	size      int64
	// until is when an unused hold ends: the end of the upload window, or
	// zero for direct (S3) uploads, which mediaslot does not see start:
	// those hold until the sweeper settles the slot.
	until   time.Time
	putting bool // a PUT is in progress: held past until
	index   int  // in due; -1 when not there
}

// holdHeap orders holds by until (container/heap).
type holdHeap []*hold

func (h holdHeap) Len() int           { return len(h) }
func (h holdHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h holdHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *holdHeap) Push(x any)        { x.(*hold).index = len(*h); *h = append(*h, x.(*hold)) }
func (h *holdHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1], x.index = nil, -1
	*h = old[:len(old)-1]
	return x
}

func newHolds() *holds {
	return &holds{slots: map[string]*hold{}, sums: map[string]int64{}, completing: map[string]*hold{}}
}

// add records a hold; h.mu is held.
func (h *holds) add(x *hold) {
	h.slots[x.id] = x
	for _, k := range usageKeys(x.owner) {
		h.sums[string(k)] += x.size
	}
	x.index = -1
	if !x.until.IsZero() {
		heap.Push(&h.due, x)
	}
}

// drop ends a hold; h.mu is held.
func (h *holds) drop(x *hold) {
	if h.slots[x.id] != x {
		return
	}
	delete(h.slots, x.id)
	delete(h.completing, x.id)
	for _, k := range usageKeys(x.owner) {
		if h.sums[string(k)] -= x.size; h.sums[string(k)] <= 0 {
			delete(h.sums, string(k))
		}
	}
	if x.index >= 0 {
		heap.Remove(&h.due, x.index)
	}
}

// settle ends x if nothing keeps it past its window any more; h.mu is held.
func (h *holds) settle(x *hold, now time.Time) {
	if x.index < 0 && !x.putting && h.completing[x.id] == nil && !x.until.IsZero() && !now.Before(x.until) {
		h.drop(x)
	}
}

// expire ends the holds whose upload window closed without a PUT in
// progress; h.mu is held. A PUT in progress keeps its hold past until.
func (h *holds) expire(now time.Time) {
	for len(h.due) > 0 && !now.Before(h.due[0].until) {
		h.settle(heap.Pop(&h.due).(*hold), now)
	}
}

// held returns the bytes held against each of owner's usage keys (user,
// domain, total) that the snapshot tx does not already count as used;
// h.mu is held.
func (h *holds) held(tx *bolt.Tx, owner string) [3]int64 {
	var n [3]int64
	keys := usageKeys(owner)
	for i, k := range keys {
		n[i] = h.sums[string(k)]
	}
	for id, x := range h.completing {
		if r, err := getRecord(tx, id); err != nil || !r.Complete {
			continue
		}
		for i, k := range usageKeys(x.owner) {
			if bytes.Equal(k, keys[i]) {
				n[i] -= x.size
			}
		}
	}
	return n
}

// loadHolds rebuilds the holds of the pending slots in the file.
func (s *Service) loadHolds() error {
	return s.opt.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id := string(k[8:])
			r, err := getRecord(tx, id)
			if err != nil {
				// Not this code's to repair: the sweeper settles the slot.
				s.log.Warn("reading a pending slot's record", "slot", id, "err", err)
				continue
			}
			if !r.Complete {
				s.holds.add(s.newHold(id, r))
			}
		}
		return nil
	})
}

func (s *Service) newHold(id string, r record) *hold {
	x := &hold{id: id, owner: r.Owner, size: r.Size}
	if s.direct == nil {
		x.until = r.Expires
	}
	return x
}

// reserve checks a new slot against the quotas and holds its size; nil if
// no quota is set.
func (s *Service) reserve(id string, rec record, r Request, now time.Time) error {
	if s.opt.Quota == (Quota{}) {
		return nil
	}
	h := s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	if err := s.opt.DB.View(func(tx *bolt.Tx) error {
		if ref := s.checkQuota(tx, r, h.held(tx, r.Owner), r.Size, now); ref != nil {
			return ref
		}
		return nil
	}); err != nil {
		return err
	}
	h.add(s.newHold(id, rec))
	return nil
}

// release ends a slot's hold, if it has one.
func (s *Service) release(id string) {
	h := s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if x := h.slots[id]; x != nil {
		h.drop(x)
	}
}

// startUpload checks a PUT against the quotas again, since they may have
// been lowered or the slot's hold may have ended, and keeps its hold while
// the upload runs. A slot over a quota loses its hold; the client may try
// again when the refusal says. The caller must call endUpload.
func (s *Service) startUpload(id string, rec record, now time.Time) *refusal.Error {
	h := s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	x := h.slots[id]
	if s.opt.Quota != (Quota{}) {
		extra := int64(0)
		if x == nil {
			extra = rec.Size
		}
		r := Request{Owner: rec.Owner, Size: rec.Size}
		var ref *refusal.Error
		err := s.opt.DB.View(func(tx *bolt.Tx) error {
			ref = s.checkQuota(tx, r, h.held(tx, r.Owner), extra, now)
			return nil
		})
		if err == nil && ref != nil {
			if x != nil {
				h.drop(x)
			}
			return ref
		}
		if x == nil {
			x = s.newHold(id, rec)
			h.add(x)
		}
	}
	if x != nil {
		x.putting = true
	}
	return nil
}

// endUpload lets an upload's hold end with its window again (if the upload
// failed; a completed one has already been settled).
func (s *Service) endUpload(id string) {
	h := s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if x := h.slots[id]; x != nil {
		x.putting = false
		h.settle(x, s.now())
	}
}

// complete records a stored upload as complete, turning its hold into
// usage. It reports whether the slot was complete already.
func (s *Service) complete(ctx context.Context, id, served string) (record, bool, error) {
	h := s.holds
	h.mu.Lock()
	if x := h.slots[id]; x != nil {
		h.completing[id] = x
	}
	h.mu.Unlock()
	var rec record
	was := false
	err := s.opt.Writer.Update(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		cur, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		was = cur.Complete
		rec, err = completed(tx, id, s.now(), served)
		return err
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if x := h.completing[id]; x != nil {
		delete(h.completing, id)
		if err == nil {
			h.drop(x)
		} else {
			h.settle(x, s.now()) // its window may have closed meanwhile
		}
	}
	return rec, was, err
}
