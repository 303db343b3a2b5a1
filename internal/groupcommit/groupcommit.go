// Package groupcommit runs many small bbolt updates in shared transactions,
// so that concurrent writers share one fsync instead of paying one each,
// without adding latency when there is only one writer.
//
// bbolt's own DB.Batch waits up to MaxBatchDelay for company; here a single
// goroutine commits whatever has queued while the previous commit was
// syncing, so a lone caller is committed at once and a crowd forms larger
// batches by itself.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("groupcommit: writer closed")

// maxBatch bounds one transaction, so a crowd cannot make one commit huge.
const maxBatch = 1024

type call struct {
	fn  func(*bolt.Tx) error
	err chan error
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
}

// New starts a Writer on db. Close it before closing db.
func New(db *bolt.DB) *Writer {
	w := &Writer{db: db, calls: make(chan call, maxBatch), done: make(chan struct{})}
	go w.loop()
	return w
}

// Update runs fn inside a read-write transaction that may be shared with
// other callers, and returns once that transaction is committed (durable).
// fn may run more than once if another function in its group fails, so it
// must only touch the transaction. If fn returns an error, none of its
// changes are kept and Update returns that error.
func (w *Writer) Update(ctx context.Context, fn func(*bolt.Tx) error) error {
	c := call{fn: fn, err: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.calls <- c:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the caller must
	// know whether its write happened.
	return <-c.err
}

// Close commits what is queued and stops the Writer.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.calls)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	batch := make([]call, 0, maxBatch)
	for c := range w.calls {
		batch = append(batch[:0], c)
	fill:
		for len(batch) < maxBatch {
			select {
			case c, ok := <-w.calls:
				if !ok {
					break fill
				}
				batch = append(batch, c)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

// commit runs the batch in one transaction. A failing function is answered
// with its error and the rest is retried without it.
func (w *Writer) commit(batch []call) {
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
				c.err <- err
			}
			return
		}
		batch[failed].err <- fnErr
		batch = append(batch[:failed], batch[failed+1:]...)
	}
}

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("groupcommit: update panicked: %v", p)
		}
	}()
	return fn(tx)
}
