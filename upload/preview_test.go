package upload

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"mediaslot/internal/thumbnail"
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
	upload := func(name, ctype string, body []byte) Slot {
		s := f.issue(t, name, int64(len(body)), ctype)
		if resp, _ := do(t, "PUT", f.url(s.PutURL), body, map[string]string{"Content-Type": ctype}); resp.StatusCode != 201 {
			t.Fatalf("PUT: %s", resp.Status)
		}
		return s
	}
	img := testImage(640, 480)
	var jb, pb, gb bytes.Buffer
	_ = jpeg.Encode(&jb, img, nil)
	_ = png.Encode(&pb, img)
	_ = gif.Encode(&gb, img, nil)
	for _, c := range []struct {
		name, ctype string
		body        []byte
	}{{"a.jpg", "image/jpeg", jb.Bytes()}, {"a.png", "image/png", pb.Bytes()}, {"a.gif", "image/gif", gb.Bytes()}} {
		s := upload(c.name, c.ctype, c.body)
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
	text := upload("a.txt", "text/plain", []byte("hello"))
	fakeJPEG := upload("fake.jpg", "image/jpeg", []byte("not really a jpeg")) // e.g. an encrypted upload declared with its plain type
	pending := f.issue(t, "p.jpg", 10, "image/jpeg")
	for _, link := range []string{text.GetURL, fakeJPEG.GetURL, pending.GetURL,
		strings.Replace(text.GetURL, "files.example.net", "elsewhere.example", 1), "aesgcm://files.example.net/file/" + text.ID + "/a.txt#00",
		"https://files.example.net/file/../etc/passwd", ""} {
		if _, ok := f.svc.Preview(ctx, link); ok {
			t.Errorf("preview made for %s", link)
		}
	}
}
