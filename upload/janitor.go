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
	check := time.NewTicker(s.checkEvery())
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

// Sweep settles slots whose time has come, in batches: pending slots whose
// upload window closed more than sweepGrace ago (a direct (S3) upload that
// arrived whole is recorded as complete; anything else is forgotten and a
// partial object deleted, so an abandoned slot leaves nothing behind), and
// stored files past their lifetime (deleted from the store with their
// records). It returns how many slots it settled.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	// Slot records may still be on their way to the file (Issue does not
	// wait for them).
	if err := s.opt.Writer.Flush(ctx); err != nil {
		return 0, err
	}
	var pending, old []string
	_ = s.opt.DB.View(func(tx *bolt.Tx) error {
		pending = due(tx, bucketPending, now.Add(-sweepGrace), sweepBatch)
		old = due(tx, bucketExpiry, now, sweepBatch)
		return nil
	})
	for _, id := range pending {
		rec, err := s.lookup(id)
		if err != nil || rec.Complete {
			continue
		}
		if s.direct != nil {
			rec, err := s.confirm(ctx, id, rec)
			if err != nil && !errors.Is(err, errNoSlot) {
				return 0, err // store down: try again next time
			}
			if rec.Complete {
				continue
			}
		} else if err := s.opt.Store.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			// left by a crash between the write and its record
			return 0, err
		}
		if err := s.opt.Writer.Update(ctx, func(tx *bolt.Tx) error { return forgotten(tx, id) }); err != nil {
			return 0, err
		}
	}
	for _, id := range old {
		if err := s.opt.Store.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		if err := s.opt.Writer.Update(ctx, func(tx *bolt.Tx) error { return expired(tx, id) }); err != nil {
			return 0, err
		}
	}
	s.limit.forget(now)
	return len(pending) + len(old), nil
}

// confirm checks a pending direct upload in the store and seals it
// (store.Presigner.Seal), so that later PUTs to its presigned URL cannot
// change what the slot serves. If the object is there with the slot's size,
// the slot becomes complete. Only the size proves a bad upload (some S3
// servers keep a truncated body when the client hangs up): such an object
// is deleted and the slot stays pending, for the client to try again while
// its URL is valid. A server that checks presigned signatures has refused
// any other type than the signed one, so a type that differs is the
// server's own (rclone forgets types when it restarts): the object is kept
// and served with the slot's type. errNoSlot means there is nothing (valid)
// to serve yet.
func (s *Service) confirm(ctx context.Context, id string, rec record) (record, error) {
	info, err := s.direct.Seal(ctx, id, rec.Size)
	if errors.Is(err, store.ErrNotFound) {
		return rec, errNoSlot
	}
	if errors.Is(err, store.ErrSize) {
		s.log.Warn("deleted an upload that does not match its slot", "slot", id, "size", info.Size, "want_size", rec.Size)
		return rec, errNoSlot
	}
	if err != nil {
		return rec, err
	}
	if rec.ContentType != "" && info.ContentType != "" && normalType(info.ContentType) != normalType(rec.ContentType) {
		s.log.Info("the store reports another type than the slot's; serving the slot's", "slot", id, "type", info.ContentType, "slot_type", rec.ContentType)
	}
	served := rec.ContentType
	if served == "" {
		served = info.ContentType
	}
	if normalType(served) == "" {
		served = "application/octet-stream"
	}
	wasComplete := false
	err = s.opt.Writer.Update(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		cur, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		wasComplete = cur.Complete
		rec, err = completed(tx, id, s.now(), served)
		return err
	})
	if err == nil && !wasComplete {
		s.uploaded(rec.Size, 0)
	}
	return rec, err
}
