package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// file is a stored file for a Maker: it counts its openings, and when
// gated, its reads past the offset at, from the pass-th pass over it
// (readHeader reads all of some files), wait until the gate opens, then
// fail with cut if it is set.
type file struct {
	data   []byte
	opened atomic.Int32

	at      int64
	pass    int
	gate    chan struct{} // nil: never waits
	reached chan struct{} // closed when a read first waits at the gate
	once    sync.Once
	cut     error
}

var errCut = errors.New("cut")

// fail opens the gate and fails the reads waiting at it.
func (f *file) fail() {
	f.cut = errCut
	close(f.gate)
}

func newFile(data []byte) *file { return &file{data: data} }

func gatedFile(data []byte, at int64, pass int) *file {
	return &file{data: data, at: at, pass: pass, gate: make(chan struct{}), reached: make(chan struct{})}
}

func (f *file) open(context.Context) (io.ReadSeekCloser, error) {
	f.opened.Add(1)
	return &fileReader{Reader: bytes.NewReader(f.data), f: f}, nil
}

type fileReader struct {
	*bytes.Reader
	f      *file
	passes int  // over at
	past   bool // at the last read
}

func (r *fileReader) Read(p []byte) (int, error) {
	past := int(r.f.at) <= len(r.f.data)-r.Len()
	if past && !r.past {
		r.passes++
	}
	r.past = past
	if r.f.gate != nil && past && r.passes >= r.f.pass {
		r.f.once.Do(func() { close(r.f.reached) })
		<-r.f.gate
		if r.f.cut != nil {
			return 0, r.f.cut
		}
	}
	return r.Reader.Read(p)
}

func (r *fileReader) Close() error { return nil }

// entryDone waits until the decode of key has ended.
func (m *Maker) entryDone(t *testing.T, key string) {
	t.Helper()
	m.mu.Lock()
	el, ok := m.entries[key]
	m.mu.Unlock()
	if !ok {
		t.Fatalf("no entry for %s", key)
	}
	<-el.Value.(*entry).done
}

// A slot's thumbnail is made once, however many messages point at it at
// once or later; so is a refusal.
func TestMakerOncePerKey(t *testing.T) {
	m := NewMaker(128, 16, time.Minute)
	photo, bomb := newFile(craftPNG(t, 640, 480, 8, 2, 0, -1)), newFile(craftPNG(t, 8000, 8000, 16, 6, 0, 16))
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if th, err := m.Make(ctx, "photo", photo.open); err != nil || th.Width != 128 {
				t.Errorf("photo: %dx%d, %v", th.Width, th.Height, err)
			}
			if _, err := m.Make(ctx, "bomb", bomb.open); !errors.As(err, new(*TooLargeError)) {
				t.Errorf("bomb: %v", err)
			}
		})
	}
	wg.Wait()
	for range 3 {
		_, _ = m.Make(ctx, "photo", photo.open)
		_, _ = m.Make(ctx, "bomb", bomb.open)
	}
	if photo.opened.Load() != 1 || bomb.opened.Load() != 1 {
		t.Errorf("decoded the photo %d times, the bomb %d times", photo.opened.Load(), bomb.opened.Load())
	}
	// the oldest entries give way to new ones
	for i := range 16 {
		_, _ = m.Make(ctx, fmt.Sprint(i), newFile(nil).open)
	}
	if _, _ = m.Make(ctx, "photo", photo.open); photo.opened.Load() != 2 || len(m.entries) != 16 || m.recent.Len() != 16 {
		t.Errorf("after 16 others: photo opened %d times, %d entries", photo.opened.Load(), len(m.entries))
	}
}

// Bombs at once cost no more memory than one: each is refused from its
// header.
func TestMakerConcurrentBombs(t *testing.T) {
	m := NewMaker(128, 64, time.Minute)
	bomb := newFile(craftPNG(t, 8000, 8000, 16, 6, 0, 16))
	var wg sync.WaitGroup
	n := allocated(func() {
		for i := range 32 {
			wg.Go(func() {
				if _, err := m.Make(context.Background(), fmt.Sprint(i), bomb.open); !errors.As(err, new(*TooLargeError)) {
					t.Errorf("bomb %d: %v", i, err)
				}
			})
		}
		wg.Wait()
	})
	if n > 2<<20 {
		t.Errorf("32 bombs took %d KiB", n>>10)
	}
}

// largeJPEG costs over half of MaxDecodeBytes (98 MB, progressive grey
// 4000x4000): two do not fit at once. Its 31 KB of scan data come after
// the pixels are allocated, so a gate at 8 KiB holds a decode midway (a
// grey JPEG's header is read up to its frame only).
func largeJPEG(t *testing.T, gated bool) *file {
	b := craftJPEG(t, 4000, 4000, 1, 0x11, 0xc2, true)
	if gated {
		// the header reads a progressive JPEG to its end: the decode is
		// the second pass
		return gatedFile(b, 8<<10, 2)
	}
	return newFile(b)
}

// The decodes running at once hold at most MaxDecodeBytes together: an
// image that does not fit beside those being decoded is skipped at once,
// not queued, and made on a later call; a small one still fits.
func TestMakerBusySkips(t *testing.T) {
	m := NewMaker(128, 16, time.Minute)
	a, b, small := largeJPEG(t, true), largeJPEG(t, true), newFile(craftPNG(t, 640, 480, 8, 2, 0, -1))
	ctx := context.Background()
	done := make(chan error)
	go func() {
		_, err := m.Make(ctx, "a", a.open)
		done <- err
	}()
	<-a.reached // a holds its budget, decoding
	if _, err := m.Make(ctx, "b", b.open); !errors.Is(err, ErrBusy) {
		t.Errorf("b beside a: %v, want ErrBusy", err)
	}
	if _, err := m.Make(ctx, "small", small.open); err != nil {
		t.Errorf("small beside a: %v", err)
	}
	a.fail()
	if err := <-done; !errors.Is(err, errCut) {
		t.Errorf("a: %v", err)
	}
	go func() {
		_, err := m.Make(ctx, "b", b.open)
		done <- err
	}()
	<-b.reached // b decodes now
	b.fail()
	if err := <-done; !errors.Is(err, errCut) || b.opened.Load() != 2 {
		t.Errorf("b after a: %v, opened %d times", err, b.opened.Load())
	}
}

// Past the time budget the caller goes on without a thumbnail; the decode
// stops at its next read and gives its budget back.
func TestMakerTimeBudget(t *testing.T) {
	m := NewMaker(128, 16, 20*time.Millisecond)
	a := largeJPEG(t, true)
	if _, err := m.Make(context.Background(), "a", a.open); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Make = %v, want ErrTimeout", err)
	}
	close(a.gate)
	m.entryDone(t, "a")
	if !m.budget.TryAcquire(MaxDecodeBytes) {
		t.Fatal("budget not given back")
	}
	m.budget.Release(MaxDecodeBytes)
	if _, err := m.Make(context.Background(), "a", a.open); !errors.Is(err, context.DeadlineExceeded) || a.opened.Load() != 1 {
		t.Errorf("again: %v, opened %d times", err, a.opened.Load())
	}
}
