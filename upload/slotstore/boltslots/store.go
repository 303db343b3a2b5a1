// Package boltslots keeps slot records and quota accounting in the bbolt
// file mediaslot embeds (the default backend of slotstore), in the layout
// of every earlier version's files.
//
// Slots are answered before their records commit: a record is committed
// with others within groupcommit.Linger (10 ms) of Issue, in one fsync,
// because waiting for the disk doubled the slot latency. Until then
// Lookup finds it in memory. Quota holds of pending slots are kept in
// memory, rebuilt from the pending records by Open: one process owns the
// file.
package boltslots

import (
	"context"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/upload/slotstore"
)

// Options configure a Store.
type Options struct {
	// Direct says that uploads go straight to the file store (S3), which
	// mediaslot does not see end: the pending slots found by Open then
	// hold their sizes until they are settled, as Issue's zero holdUntil
	// says; otherwise until their upload windows close.
	Direct bool
	Logger *slog.Logger
}

// Store is a slotstore.Store on a bbolt file.
type Store struct {
	db  *bolt.DB
	w   *groupcommit.Writer
	opt Options
	log *slog.Logger
	// unsynced holds the records of issued slots until they are
	// committed (id -> record).
	unsynced sync.Map
	holds    *holds
}

var _ slotstore.Store = (*Store)(nil)

// Open returns a Store on db, writing through w (shared with the other
// users of db). The buckets are created if needed.
func Open(db *bolt.DB, w *groupcommit.Writer, opt Options) (*Store, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	s := &Store{db: db, w: w, opt: opt, log: opt.Logger, holds: newHolds()}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, s.loadHolds()
}

// loadHolds rebuilds the holds of the pending slots in the file.
func (s *Store) loadHolds() error {
	return s.db.View(func(tx *bolt.Tx) error {
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
				x := &hold{id: id, owner: r.Owner, size: r.Size}
				if !s.opt.Direct {
					x.until = r.Expires
				}
				s.holds.add(x)
			}
		}
		return nil
	})
}

// Issue checks and holds under the holds' lock, against one snapshot of
// the file, then submits the record to the Writer without waiting for its
// commit. No hold is taken when no quota is set.
func (s *Store) Issue(ctx context.Context, id string, rec slotstore.Record, holdUntil time.Time, q slotstore.Quota, now time.Time) (*slotstore.Over, error) {
	if q != (slotstore.Quota{}) {
		h := s.holds
		h.mu.Lock()
		h.expire(now)
		var over *slotstore.Over
		err := s.db.View(func(tx *bolt.Tx) error {
			over = check(tx, rec.Owner, h.held(tx, rec.Owner), rec.Size, q, now)
			return nil
		})
		if err == nil && over == nil {
			h.add(&hold{id: id, owner: rec.Owner, size: rec.Size, until: holdUntil})
		}
		h.mu.Unlock()
		if err != nil || over != nil {
			return over, err
		}
	}
	s.unsynced.Store(id, rec)
	err := s.w.Submit(ctx, func(tx *bolt.Tx) error { return issued(tx, id, rec) }, func(err error) {
		s.unsynced.Delete(id)
		if err != nil {
			s.holds.release(id)
			s.log.Error("recording slot", "slot", id, "err", err)
		}
	})
	if err != nil {
		s.unsynced.Delete(id)
		s.holds.release(id)
	}
	return nil, err
}

// Lookup reads a slot's record, from unsynced while it is on its way to
// the file. unsynced is read first: a record leaves it only once committed.
func (s *Store) Lookup(_ context.Context, id string) (slotstore.Record, error) {
	if r, ok := s.unsynced.Load(id); ok {
		return r.(record), nil
	}
	var r record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, id)
		return err
	})
	return r, err
}

// StartUpload checks the slot again and marks its hold as in use.
func (s *Store) StartUpload(ctx context.Context, id string, q slotstore.Quota, now time.Time) (*slotstore.Over, error) {
	rec, err := s.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	h := s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	x := h.slots[id]
	if q != (slotstore.Quota{}) {
		extra := int64(0)
		if x == nil {
			extra = rec.Size
		}
		var over *slotstore.Over
		err := s.db.View(func(tx *bolt.Tx) error {
			over = check(tx, rec.Owner, h.held(tx, rec.Owner), extra, q, now)
			return nil
		})
		if err == nil && over != nil {
			if x != nil {
				h.drop(x)
			}
			return over, nil
		}
		if x == nil {
			x = &hold{id: id, owner: rec.Owner, size: rec.Size, until: rec.Expires}
			h.add(x)
		}
	}
	if x != nil {
		x.putting = true
	}
	return nil, nil
}

// EndUpload lets the slot's hold end with its window again.
func (s *Store) EndUpload(_ context.Context, id string, now time.Time) error {
	h := s.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	if x := h.slots[id]; x != nil {
		x.putting = false
		h.settle(x, now)
	}
	return nil
}

// Complete commits the completion, its hold marked completing meanwhile
// (see holds).
func (s *Store) Complete(ctx context.Context, id string, now time.Time, storedType string) (slotstore.Record, bool, error) {
	h := s.holds
	h.mu.Lock()
	if x := h.slots[id]; x != nil {
		h.completing[id] = x
	}
	h.mu.Unlock()
	var rec record
	was := false
	err := s.w.Update(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		cur, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		was = cur.Complete
		rec, err = completed(tx, id, now, storedType)
		return err
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if x := h.completing[id]; x != nil {
		delete(h.completing, id)
		if err == nil {
			h.drop(x)
		} else {
			h.settle(x, now) // its window may have closed meanwhile
		}
	}
	return rec, was, err
}

// Forget removes pending slots and ends their holds.
func (s *Store) Forget(ctx context.Context, ids ...string) error {
	if err := s.update(ctx, ids, forgotten); err != nil {
		return err
	}
	for _, id := range ids {
		s.holds.release(id)
	}
	return nil
}

// Expire removes complete slots.
func (s *Store) Expire(ctx context.Context, ids ...string) error {
	return s.update(ctx, ids, expired)
}

// update applies fn to each of ids in one transaction.
func (s *Store) update(ctx context.Context, ids []string, fn func(*bolt.Tx, string) error) error {
	return s.w.Update(ctx, func(tx *bolt.Tx) error {
		for _, id := range ids {
			if err := fn(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// DuePending first waits for the records still on their way to the file.
func (s *Store) DuePending(ctx context.Context, t time.Time, n int) ([]slotstore.Slot, error) {
	if err := s.w.Flush(ctx); err != nil {
		return nil, err
	}
	var slots []slotstore.Slot
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, id := range due(tx, bucketPending, t, n) {
			r, err := getRecord(tx, id)
			if err != nil {
				// not this code's to repair
				s.log.Warn("reading a pending slot's record", "slot", id, "err", err)
				continue
			}
			slots = append(slots, slotstore.Slot{ID: id, Record: r})
		}
		return nil
	})
	return slots, err
}

// DueExpired lists complete slots past their DeleteAfter.
func (s *Store) DueExpired(_ context.Context, t time.Time, n int) ([]string, error) {
	return s.due(bucketExpiry, t, n)
}

func (s *Store) due(bucket []byte, t time.Time, n int) ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		ids = due(tx, bucket, t, n)
		return nil
	})
	return ids, err
}

// StoredBytes reads the usage counter that every completed and every
// deleted upload updates: one key lookup, cheap enough for every metrics
// scrape.
func (s *Store) StoredBytes(context.Context) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = getUint(tx.Bucket(bucketUsage).Get([]byte("g")))
		return nil
	})
	return n, err
}
