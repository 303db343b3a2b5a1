package upload

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/store"
)

// Run does the Service's background work until ctx ends: it probes the
// store and settles slots whose upload window has closed.
func (s *Service) Run(ctx context.Context) {
	s.checkStore(ctx)
	check := time.NewTicker(checkInterval)
	defer check.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			s.checkStore(ctx)
		case <-sweep.C:
			if n, err := s.Sweep(ctx); err != nil {
				s.log.Error("settling expired slots", "err", err)
			} else if n > 0 {
				s.log.Debug("settled expired slots", "count", n)
			}
		}
	}
}

const (
	sweepInterval = time.Minute
	// sweepGrace lets an upload that started just before its slot expired
	// finish before the slot is settled.
	sweepGrace = 15 * time.Minute
	sweepBatch = 1000
)

// Sweep settles pending slots whose upload window closed more than
// sweepGrace ago: a direct (S3) upload that arrived whole is recorded as
// complete; anything else is forgotten, and a partial object is deleted, so
// an abandoned slot leaves nothing behind. It returns how many it settled.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-sweepGrace)
	type pending struct {
		id  string
		rec record
	}
	var due []pending
	err := s.opt.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSlots).Cursor()
		for k, v := c.First(); k != nil && len(due) < sweepBatch; k, v = c.Next() {
			r, err := decodeRecord(v)
			if err != nil || r.Complete || r.Expires.After(cutoff) {
				continue
			}
			due = append(due, pending{string(k), r})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, p := range due {
		if s.direct != nil {
			rec, err := s.confirm(ctx, p.id, p.rec)
			if err != nil && !errors.Is(err, errNoSlot) {
				return 0, err // store down: try again next time
			}
			if rec.Complete {
				continue
			}
		} else if err := s.opt.Store.Delete(ctx, p.id); err != nil && !errors.Is(err, store.ErrNotFound) {
			// left by a crash between the write and its record
			return 0, err
		}
		err := s.opt.Writer.Update(ctx, func(tx *bolt.Tx) error {
			cur, err := getRecord(tx, p.id)
			if err != nil || cur.Complete {
				return nil
			}
			return tx.Bucket(bucketSlots).Delete([]byte(p.id))
		})
		if err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// confirm checks a pending direct upload in the store. If the object is
// there with the slot's size and type, the slot becomes complete. A wrong
// object (some S3 servers keep a truncated body when the client hangs up)
// is deleted and the slot stays pending, for the client to try again while
// its URL is valid. errNoSlot means there is nothing (valid) to serve yet.
func (s *Service) confirm(ctx context.Context, id string, rec record) (record, error) {
	info, err := s.opt.Store.Stat(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, errNoSlot
	}
	if err != nil {
		return rec, err
	}
	if info.Size != rec.Size || (rec.ContentType != "" && info.ContentType != "" && normalType(info.ContentType) != normalType(rec.ContentType)) {
		s.log.Warn("deleting an upload that does not match its slot", "slot", id, "size", info.Size, "want_size", rec.Size, "type", info.ContentType)
		if err := s.opt.Store.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return rec, err
		}
		return rec, errNoSlot
	}
	served := rec.ContentType
	if served == "" {
		served = info.ContentType
	}
	if normalType(served) == "" {
		served = "application/octet-stream"
	}
	err = s.opt.Writer.Update(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		cur, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if !cur.Complete {
			cur.Complete, cur.Stored, cur.StoredType = true, s.now(), served
		}
		rec = cur
		return putRecord(tx, id, cur)
	})
	return rec, err
}
