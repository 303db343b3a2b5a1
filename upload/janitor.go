package upload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"mime"
	"path"
	"time"

	"mediaslot/store"
)

// Run does the Service's background work until ctx ends: RunProbes and
// RunJanitor together, as one instance alone runs them.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); s.RunJanitor(ctx) }()
	s.RunProbes(ctx)
	<-done
}

// RunProbes probes the store until ctx ends. Every instance of a cluster
// runs its own: its slot answers and its readiness follow its own view of
// the store (StoreErr).
func (s *Service) RunProbes(ctx context.Context) {
	s.checkStore(ctx)
	check := time.NewTicker(s.checkEvery())
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			s.checkStore(ctx)
		}
	}
}

// RunJanitor settles, until ctx ends, the slots whose upload window has
// closed (Sweep), after settling at once the uploads a crash or a stop cut
// off (reconcile). Instances sharing their slot records run it once per
// cluster, under a lease: the one that takes it over from a dead holder
// reconciles what that one left.
func (s *Service) RunJanitor(ctx context.Context) {
	s.reconcile(ctx)
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
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
// records). It returns how many slots it settled. A slot the store fails
// on stays for the next sweep, and the sweep goes on past it: one file the
// store may not touch, first in line, stopped every sweep, and no file
// expired any more. After sweepMaxErrors failures the store is taken for
// down, and the sweep stops.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	var errs []error
	// Batch after batch while they are full and settle something: slots
	// issued faster than a batch a minute (17 a second: two accounts at
	// the default slot rate) and abandoned piled up without end.
	for full := true; full && len(errs) < sweepMaxErrors && ctx.Err() == nil; {
		pending, err := s.opt.Records.DuePending(ctx, now.Add(-sweepGrace), sweepBatch)
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		old, err := s.opt.Records.DueExpired(ctx, now, sweepBatch)
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		// The store is asked slot by slot; the records change in one step
		// a batch.
		settled := 0
		var forget, gone []string
		for _, p := range pending {
			if len(errs) >= sweepMaxErrors {
				break
			}
			if _, busy := s.active.Load(p.ID); busy {
				continue // a slow upload, still running
			}
			complete, err := s.settlePending(ctx, p.ID, p.Record)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("slot %s: %w", p.ID, err))
			case complete:
				settled++
			default:
				forget = append(forget, p.ID)
			}
		}
		for _, id := range old {
			if len(errs) >= sweepMaxErrors {
				break
			}
			if err := s.opt.Store.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, fmt.Errorf("slot %s: %w", id, err))
				continue
			}
			gone = append(gone, id)
		}
		if err := s.opt.Records.Forget(ctx, forget...); err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		if err := s.opt.Records.Expire(ctx, gone...); err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		settled += len(forget) + len(gone)
		n += settled
		full = settled > 0 && (len(pending) == sweepBatch || len(old) == sweepBatch)
	}
	s.limit.forget(now)
	return n, errors.Join(errs...)
}

// sweepMaxErrors is how many slots a sweep (or the reconciliation at
// start) fails on before it takes the store for down and stops.
const sweepMaxErrors = 10

// settlePending checks a pending slot in the store, reporting whether it
// is complete now: a file that arrived whole (directly in S3, or through a
// PUT whose record a crash cut off) is kept; anything else is deleted, and
// the slot stays pending.
func (s *Service) settlePending(ctx context.Context, id string, rec record) (bool, error) {
	rec, err := s.confirm(ctx, id, rec)
	if err != nil && !errors.Is(err, errNoSlot) {
		return false, err
	}
	return rec.Complete, nil
}

// reconcile settles, at start, the pending slots whose file is already in
// the store: direct uploads that arrived while mediaslot was down, and PUTs
// whose record a crash (kill -9, power cut) cut off between the write and
// the record. Until then such a file would answer 404 to GET and 409 to
// another PUT, for the slot lifetime and the sweeper's grace.
func (s *Service) reconcile(ctx context.Context) {
	pending, err := s.opt.Records.DuePending(ctx, endOfTime, math.MaxInt32)
	if err != nil {
		s.log.Warn("listing pending uploads at start; the sweeper will settle them", "err", err)
		return
	}
	n, failed := 0, 0
	for _, p := range pending {
		if _, busy := s.active.Load(p.ID); busy {
			continue
		}
		complete, err := s.settlePending(ctx, p.ID, p.Record)
		if err != nil {
			// as in Sweep: past one slot, not past a store that is down
			s.log.Warn("checking a pending upload at start; the sweeper will", "slot", p.ID, "err", err)
			if failed++; failed >= sweepMaxErrors {
				return
			}
			continue
		}
		if complete {
			n++
		}
	}
	if n > 0 {
		s.log.Info("recorded uploads stored before a restart", "count", n)
	}
}

// endOfTime is after every slot's upload window (a time every backend
// can store).
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// confirm checks a pending upload in the store. If the object is there with
// the slot's size, the slot becomes complete; a wrong one is deleted and the
// slot stays pending (see whole). errNoSlot means there is nothing (valid)
// to serve yet.
func (s *Service) confirm(ctx context.Context, id string, rec record) (record, error) {
	info, err := s.whole(ctx, id, rec)
	if err != nil {
		return rec, err
	}
	if rec.ContentType != "" && info.ContentType != "" && normalType(info.ContentType) != normalType(rec.ContentType) {
		s.log.Info("the store reports another type than the slot's; serving the slot's", "slot", id, "type", info.ContentType, "slot_type", rec.ContentType)
	}
	// The type the PUT carried is lost when the disk store kept the file
	// but not its record: the name's extension says it then.
	served := rec.ContentType
	if served == "" {
		served = info.ContentType
	}
	if served == "" {
		served = mime.TypeByExtension(path.Ext(rec.Filename))
	}
	if normalType(served) == "" {
		served = "application/octet-stream"
	}
	rec, was, err := s.complete(ctx, id, served)
	if err == nil && !was {
		s.uploaded(rec.Size, 0)
	}
	return rec, err
}

// whole reports whether the object stored for a pending slot is its whole
// upload: its Info if so; errNoSlot if there is none or one of another size,
// which is deleted (some S3 servers keep a truncated body when the client
// hangs up; a disk could have lost part of a file), so the client may try
// again while its URL is valid. Only the size proves a bad upload: a server
// that checks presigned signatures has refused any other type than the
// signed one, so a type that differs is the server's own (rclone forgets
// types when it restarts), and the slot's type is served. A direct (S3)
// upload is sealed (store.Presigner.Seal), so that later PUTs to its
// presigned URL cannot change what the slot serves.
func (s *Service) whole(ctx context.Context, id string, rec record) (store.Info, error) {
	if s.direct != nil {
		info, err := s.direct.Seal(ctx, id, rec.Size)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return info, errNoSlot
		case errors.Is(err, store.ErrSize):
			s.log.Warn("deleted an upload that does not match its slot", "slot", id, "size", info.Size, "want_size", rec.Size)
			return info, errNoSlot
		}
		return info, err
	}
	info, err := s.opt.Store.Stat(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return info, errNoSlot
	}
	if err != nil {
		return info, err
	}
	if info.Size != rec.Size {
		s.log.Warn("deleting an upload that does not match its slot", "slot", id, "size", info.Size, "want_size", rec.Size)
		if err := s.opt.Store.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return info, err
		}
		return info, errNoSlot
	}
	return info, nil
}
