package upload

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"mediaslot/internal/thumbnail"
	"mediaslot/store"
	"mediaslot/store/disk"
)

func testImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	return img
}

// Previews are made of images uploaded here, and of nothing else.
func TestPreview(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	img := testImage(640, 480)
	var jb, pb, gb bytes.Buffer
	_ = jpeg.Encode(&jb, img, nil)
	_ = png.Encode(&pb, img)
	_ = gif.Encode(&gb, img, nil)
	for _, c := range []struct {
		name, ctype string
		body        []byte
	}{{"a.jpg", "image/jpeg", jb.Bytes()}, {"a.png", "image/png", pb.Bytes()}, {"a.gif", "image/gif", gb.Bytes()}} {
		s := f.uploaded(t, c.name, c.ctype, c.body)
		p, ok := f.svc.Preview(ctx, s.GetURL)
		if !ok {
			t.Fatalf("%s: no preview", c.name)
		}
		if p.Width != PreviewMaxSide || p.Height != 96 || len(p.Data) > thumbnail.MaxBytes || p.Thumbnail.MediaType != "image/png" ||
			p.Name != c.name || p.Size != int64(len(c.body)) || p.MediaType != c.ctype {
			t.Errorf("%s: preview %dx%d, %d bytes, %+v", c.name, p.Width, p.Height, len(p.Data), p)
		}
		if _, err := png.Decode(bytes.NewReader(p.Data)); err != nil {
			t.Errorf("%s: preview is not a PNG: %v", c.name, err)
		}
	}
	text := f.uploaded(t, "a.txt", "text/plain", []byte("hello"))
	fakeJPEG := f.uploaded(t, "fake.jpg", "image/jpeg", []byte("not really a jpeg")) // e.g. an encrypted upload declared with its plain type
	pending := f.issue(t, "p.jpg", 10, "image/jpeg")
	for _, link := range []string{text.GetURL, fakeJPEG.GetURL, pending.GetURL,
		strings.Replace(text.GetURL, "files.example.net", "elsewhere.example", 1), "aesgcm://files.example.net/file/" + text.ID + "/a.txt#00",
		"https://files.example.net/file/../etc/passwd", ""} {
		if _, ok := f.svc.Preview(ctx, link); ok {
			t.Errorf("preview made for %s", link)
		}
	}
}

// openCounter counts the files opened, as a preview opens its file once
// per decode.
type openCounter struct {
	store.Store
	opened atomic.Int32
}

func (s *openCounter) Open(ctx context.Context, key string) (io.ReadSeekCloser, error) {
	s.opened.Add(1)
	return s.Store.Open(ctx, key)
}

func newCountingFixture(t *testing.T) (*fixture, *openCounter) {
	st, err := disk.New(filepath.Join(t.TempDir(), "files"))
	if err != nil {
		t.Fatal(err)
	}
	c := &openCounter{Store: st}
	return newFixtureWith(t, c, Download{}), c
}

// uploaded issues a slot and PUTs body in it.
func (f *fixture) uploaded(t *testing.T, name, ctype string, body []byte) Slot {
	t.Helper()
	s := f.issue(t, name, int64(len(body)), ctype)
	if resp, _ := do(t, "PUT", f.url(s.PutURL), body, map[string]string{"Content-Type": ctype}); resp.StatusCode != 201 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	return s
}

// Issue 12: a PNG claiming 8000x8000 16-bit pixels took half a gigabyte
// per message, and six at once 3.2 GB. Now it is refused from its header,
// for one message or many at once, and the next messages pointing at it
// do not even open it.
func TestPreviewBomb(t *testing.T) {
	bomb, err := os.ReadFile("../internal/thumbnail/testdata/bomb.png")
	if err != nil {
		t.Fatal(err)
	}
	f, st := newCountingFixture(t)
	var links []string
	for range 6 {
		links = append(links, f.uploaded(t, "bomb.png", "image/png", bomb).GetURL)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for _, link := range append(links, links...) {
		wg.Go(func() {
			if _, ok := f.svc.Preview(context.Background(), link); ok {
				t.Errorf("preview made of the bomb")
			}
		})
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("12 previews of bombs allocated %d MiB", n>>20)
	}
	if n := st.opened.Load(); n != 6 {
		t.Errorf("6 bombs opened %d times", n)
	}
}

// A slot's preview is made once, however many messages point at it.
func TestPreviewOncePerSlot(t *testing.T) {
	f, st := newCountingFixture(t)
	var b bytes.Buffer
	_ = png.Encode(&b, testImage(640, 480))
	link := f.uploaded(t, "a.png", "image/png", b.Bytes()).GetURL
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, ok := f.svc.Preview(context.Background(), link); !ok {
				t.Error("no preview")
			}
		})
	}
	wg.Wait()
	if p, ok := f.svc.Preview(context.Background(), link); !ok || p.Width != PreviewMaxSide {
		t.Errorf("preview %+v, %v", p, ok)
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("decoded %d times", n)
	}
}
