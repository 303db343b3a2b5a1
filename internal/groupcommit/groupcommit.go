// Package groupcommit runs many small bbolt updates in shared transactions,
// so that concurrent writers share one fsync instead of paying one each,
// without adding latency when there is only one writer.
//
// bbolt's own DB.Batch waits up to MaxBatchDelay for company; here a single
// goroutine commits whatever has queued while the previous commit was
// syncing, so a lone caller is committed at once and a crowd forms larger
// batches by itself. Writes nobody waits for (Submit) are different: they
// linger up to Linger for company, since a commit costs the same for one
// record as for a hundred and nobody's latency depends on it.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("groupcommit: writer closed")

// maxBatch bounds one transaction, so a crowd cannot make one commit huge.
const maxBatch = 1024

// Linger is how long a batch of Submit calls alone waits for more before
// it is committed: as long as bbolt's DB.Batch waits by default. An Update
// or a Flush ends the wait at once.
const Linger = 10 * time.Millisecond

// linger is Linger, lengthened by tests that show what does not wait for it.
var linger = Linger

type call struct {
	fn     func(*bolt.Tx) error
	done   func(error)
	urgent bool // someone waits for the commit (Update)
}

// Writer commits update functions in groups. Its zero value is not usable; call New.
type Writer struct {
	db    *bolt.DB
	calls chan call
	done  chan struct{}
	// mu guards closing calls: senders hold it shared, Close exclusively,
	// so no send can race the close of the channel.
	mu     sync.RWMutex
	closed bool

	// queued counts calls handed to the loop, finished those it has
	// answered; Flush compares them. progress is closed and replaced each
	// time finished grows.
	queued   atomic.Uint64
	pmu      sync.Mutex
	finished uint64
	progress chan struct{}
	// kick ends a lingering batch early: Flush waits for it.
	kick chan struct{}
}

// New starts a Writer on db. Close it before closing db.
func New(db *bolt.DB) *Writer {
	w := &Writer{db: db, calls: make(chan call, maxBatch), done: make(chan struct{}), progress: make(chan struct{}), kick: make(chan struct{}, 1)}
	go w.loop()
	return w
}

// Update runs fn inside a read-write transaction that may be shared with
// other callers, and returns once that transaction is committed (durable).
// fn may run more than once if another function in its group fails, so it
// must only touch the transaction. If fn returns an error, none of its
// changes are kept and Update returns that error.
func (w *Writer) Update(ctx context.Context, fn func(*bolt.Tx) error) error {
	errc := make(chan error, 1)
	if err := w.queue(ctx, call{fn: fn, done: func(err error) { errc <- err }, urgent: true}); err != nil {
		return err
	}
	// Once queued, wait for the outcome even if ctx ends: the caller must
	// know whether its write happened.
	return <-errc
}

// Start queues fn like Update, but returns once fn is queued: wait then
// returns what Update would have. Calls run in the order they were queued,
// so a caller may start its next update before the last one committed,
// and both may share a commit.
func (w *Writer) Start(ctx context.Context, fn func(*bolt.Tx) error) (wait func() error, err error) {
	errc := make(chan error, 1)
	if err := w.queue(ctx, call{fn: fn, done: func(err error) { errc <- err }, urgent: true}); err != nil {
		return nil, err
	}
	return func() error { return <-errc }, nil
}

// Submit queues fn like Update but returns at once; done, if not nil, is
// called with the outcome once the transaction is committed, on the
// Writer's goroutine (so it must not block or call the Writer). It is for
// writes whose caller may answer before they are durable: a later Flush
// (or any Update) returns only after they are visible to readers. Submit
// fails only if the Writer is closed or ctx ends before fn is queued.
func (w *Writer) Submit(ctx context.Context, fn func(*bolt.Tx) error, done func(error)) error {
	return w.queue(ctx, call{fn: fn, done: done})
}

func (w *Writer) queue(ctx context.Context, c call) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	// Counted before it is queued: Flush must never see it answered
	// before it was counted.
	w.queued.Add(1)
	select {
	case w.calls <- c:
		if c.urgent || len(w.calls) >= cap(w.calls)/2 {
			w.wake()
		}
		return nil
	case <-ctx.Done():
		w.queued.Add(^uint64(0))
		return ctx.Err()
	}
}

// Flush waits until every call submitted before it was committed (or
// failed). It returns at once when nothing is pending, so a periodic task
// (upload's Sweep) can call it every round without costing a commit.
func (w *Writer) Flush(ctx context.Context) error {
	target := w.queued.Load()
	for {
		w.pmu.Lock()
		finished, progress := w.finished, w.progress
		w.pmu.Unlock()
		if finished >= target {
			return nil
		}
		w.wake()
		select {
		case <-progress:
		case <-w.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close commits what is queued and stops the Writer.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.calls)
		w.wake()
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	batch := make([]call, 0, maxBatch)
	timer := time.NewTimer(linger)
	timer.Stop()
	for c := range w.calls {
		batch = append(batch[:0], c)
		batch, urgent, open := w.fill(batch, c.urgent)
		if open && !urgent && len(batch) < maxBatch {
			// Sleep rather than take each call as it comes: a wake-up per
			// call cost as much as its share of the commit. Update, Flush,
			// a filling queue and Close end the sleep (kick).
			timer.Reset(linger)
			select {
			case <-w.kick:
			case <-timer.C:
			}
			timer.Stop()
			batch, _, _ = w.fill(batch, urgent)
		}
		w.commit(batch)
	}
}

// fill adds what is queued to batch, without waiting. It reports whether
// the batch holds an urgent call and whether calls is still open.
func (w *Writer) fill(batch []call, urgent bool) ([]call, bool, bool) {
	for len(batch) < maxBatch {
		select {
		case c, ok := <-w.calls:
			if !ok {
				return batch, urgent, false
			}
			batch = append(batch, c)
			urgent = urgent || c.urgent
		default:
			return batch, urgent, true
		}
	}
	return batch, urgent, true
}

// wake ends a lingering batch early.
func (w *Writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// commit runs the batch in one transaction. A failing function is answered
// with its error and the rest is retried without it.
func (w *Writer) commit(batch []call) {
	defer w.finish(uint64(len(batch)))
	for len(batch) > 0 {
		failed := -1
		var fnErr error
		err := w.db.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				if fnErr = safeCall(c.fn, tx); fnErr != nil {
					failed = i
					return fnErr
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range batch {
				answer(c, err)
			}
			return
		}
		answer(batch[failed], fnErr)
		batch = append(batch[:failed], batch[failed+1:]...)
	}
}

func answer(c call, err error) {
	if c.done != nil {
		c.done(err)
	}
}

// finish counts n more calls answered and wakes Flush.
func (w *Writer) finish(n uint64) {
	w.pmu.Lock()
	w.finished += n
	close(w.progress)
	w.progress = make(chan struct{})
	w.pmu.Unlock()
}

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("groupcommit: update panicked: %v", p)
		}
	}()
	return fn(tx)
}
