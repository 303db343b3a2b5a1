package boltslots

import (
	"bytes"
	"container/heap"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// holds are the quota reservations of pending slots (slotstore.Store says
// what they hold and for how long). Without them, slots requested
// together before any upload all passed.
//
// They live in memory, not in the bbolt file, because Issue answers before
// its record is committed: the check and the reservation happen together
// under mu, and the usage counters they are checked against change only
// through completed and expired, which Issue reads in one snapshot. Open
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

// release ends a slot's hold, if it has one.
func (h *holds) release(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if x := h.slots[id]; x != nil {
		h.drop(x)
	}
}
