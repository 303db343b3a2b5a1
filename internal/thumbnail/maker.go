package thumbnail

import (
	"container/list"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy says a Maker's decoding budget was in use: the thumbnail is
// skipped rather than queued, and may be made next time.
var ErrBusy = errors.New("thumbnail: decoding budget in use")

// ErrTimeout says a thumbnail was not made within a Maker's time budget.
var ErrTimeout = errors.New("thumbnail: not made in time")

// headerBytes is what a Maker holds of its budget while it reads an image's
// header: bufio's and the decoders' buffers.
const headerBytes = 64 << 10

// Maker makes the thumbnails of stored files for a server: each file's
// once (the result, a refusal included, is kept for the next messages
// pointing at it), within MaxDecodeBytes for all the decodes it runs at
// once, and within a time budget.
type Maker struct {
	side    int
	wait    time.Duration
	keep    int
	budget  *semaphore.Weighted
	mu      sync.Mutex
	entries map[string]*list.Element // of *entry
	recent  *list.List               // most recently used first
}

type entry struct {
	key  string
	done chan struct{} // closed once th and err are set
	th   Thumbnail
	err  error
}

// NewMaker returns a Maker of thumbnails at most side pixels on a side,
// that remembers the last keep of them and waits at most wait for one.
func NewMaker(side, keep int, wait time.Duration) *Maker {
	return &Maker{side: side, wait: wait, keep: keep, budget: semaphore.NewWeighted(MaxDecodeBytes),
		entries: map[string]*list.Element{}, recent: list.New()}
}

// Make returns the thumbnail of the file key names, opening it with open
// the first time only. It returns ErrBusy at once when other decodes hold
// the budget it needs, and ErrTimeout past the time budget: decoding
// cannot be interrupted, so the decode goes on in the background, holding
// its share of the budget, until its next read fails or it finishes, and
// its result is kept for the next call.
func (m *Maker) Make(ctx context.Context, key string, open func(context.Context) (io.ReadSeekCloser, error)) (Thumbnail, error) {
	m.mu.Lock()
	el, ok := m.entries[key]
	if ok {
		m.recent.MoveToFront(el)
	} else {
		if !m.budget.TryAcquire(headerBytes) {
			m.mu.Unlock()
			return Thumbnail{}, ErrBusy
		}
		el = m.recent.PushFront(&entry{key: key, done: make(chan struct{})})
		m.entries[key] = el
		for m.recent.Len() > m.keep {
			m.forgetLocked(m.recent.Back())
		}
		go m.run(ctx, el, open)
	}
	e := el.Value.(*entry)
	m.mu.Unlock()

	timer := time.NewTimer(m.wait)
	defer timer.Stop()
	select {
	case <-e.done:
		return e.th, e.err
	case <-timer.C:
		return Thumbnail{}, ErrTimeout
	case <-ctx.Done():
		return Thumbnail{}, ctx.Err()
	}
}

// run makes the thumbnail of el's entry, holding headerBytes of the budget
// on entry, and more once the header tells what decoding takes. Its reads
// fail past the time budget, which ends most decodes early.
func (m *Maker) run(ctx context.Context, el *list.Element, open func(context.Context) (io.ReadSeekCloser, error)) {
	e := el.Value.(*entry)
	held := int64(headerBytes)
	defer func() {
		m.budget.Release(held)
		close(e.done)
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.wait)
	defer cancel()
	f, err := open(ctx)
	if err != nil {
		e.err = err
		m.forget(el) // the store may answer next time
		return
	}
	defer f.Close()
	r := ctxReader{ctx, f}
	h, err := readHeader(r, m.side)
	if err != nil {
		e.err = err
		return
	}
	if h.cost > held {
		if !m.budget.TryAcquire(h.cost - held) {
			e.err = ErrBusy
			m.forget(el)
			return
		}
		held = h.cost
	}
	e.th, e.err = render(r, h, m.side)
}

func (m *Maker) forget(el *list.Element) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetLocked(el)
}

// forgetLocked drops el unless it was dropped already (evicted, perhaps
// replaced by a newer entry for the same key).
func (m *Maker) forgetLocked(el *list.Element) {
	e := el.Value.(*entry)
	if m.entries[e.key] == el {
		delete(m.entries, e.key)
		m.recent.Remove(el)
	}
}

// ctxReader fails its reads once ctx is done, so that a decode past its
// time budget stops at its next read.
type ctxReader struct {
	ctx context.Context
	io.ReadSeeker
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.ReadSeeker.Read(p)
}
