package thumbnail

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
)

// craftPNG writes a PNG header for a w×h image of the given bit depth and
// colour type, and zero pixels for the first rows of each pass (all rows
// when rows < 0). A few rows are enough for a bomb: image/png allocates
// the whole image before it reads the first one.
func craftPNG(t testing.TB, w, h int, depth, colorType, interlace byte, rows int) []byte {
	t.Helper()
	var out bytes.Buffer
	chunk := func(typ string, data []byte) { out.Write(pngChunk(typ, data)) }
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9], ihdr[12] = depth, colorType, interlace
	chunk("IHDR", ihdr)
	channels := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	if colorType == 3 {
		chunk("PLTE", make([]byte, 3*256))
	}
	passes := [][4]int{{0, 0, 1, 1}}
	if interlace == 1 {
		passes = [][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	for _, p := range passes {
		pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
		if pw <= 0 || ph <= 0 {
			continue
		}
		if rows >= 0 {
			ph = min(ph, rows)
		}
		row := make([]byte, 1+(pw*channels*int(depth)+7)/8)
		for range ph {
			_, _ = zw.Write(row)
		}
	}
	_ = zw.Close()
	chunk("IDAT", z.Bytes())
	if rows < 0 {
		chunk("IEND", nil)
	}
	return out.Bytes()
}

// pngChunk returns a PNG chunk: length, type, data, CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(append(b, typ...), data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// withTRNS adds a tRNS chunk after the IHDR of a grey PNG: image/png then
// decodes it to NRGBA, though DecodeConfig says grey.
func withTRNS(b []byte) []byte {
	const afterIHDR = 8 + 12 + 13
	return append(append(b[:afterIHDR:afterIHDR], pngChunk("tRNS", []byte{0, 0})...), b[afterIHDR:]...)
}

// interlacedGIF marks the first frame of a GIF with a global colour table
// and no extensions, as gif.Encode writes them, as interlaced: image/gif
// then reorders its rows into a second copy.
func interlacedGIF(t *testing.T, b []byte) []byte {
	t.Helper()
	at := 13 + 3<<(b[10]&7+1) // header, screen descriptor, colour table
	if b[10]&0x80 == 0 || b[at] != 0x2c {
		t.Fatal("not a GIF as gif.Encode writes them")
	}
	b = bytes.Clone(b)
	b[at+9] |= 0x40
	return b
}

// craftJPEG writes a JPEG of grey blocks with n components sampled as hv
// (0x11: full resolution) in one DC scan: progressive when sof is 0xc2.
// Without data (scan false) it stops after the scan header.
func craftJPEG(t testing.TB, w, h, n int, hv byte, sof byte, scan bool) []byte {
	t.Helper()
	var out bytes.Buffer
	seg := func(marker byte, data []byte) {
		out.Write([]byte{0xff, marker})
		_ = binary.Write(&out, binary.BigEndian, uint16(len(data)+2))
		out.Write(data)
	}
	out.Write([]byte{0xff, 0xd8})
	seg(0xdb, append([]byte{0}, bytes.Repeat([]byte{1}, 64)...)) // DQT
	f := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(n)}
	for i := range n {
		s := byte(0x11)
		if i == 0 {
			s = hv
		}
		f = append(f, byte(i+1), s, 0)
	}
	seg(sof, f)
	dht := append([]byte{0x00, 1}, make([]byte, 15)...) // one 1-bit code: DC difference 0
	seg(0xc4, append(dht, 0))
	seg(0xc4, append([]byte{0x10, 1}, append(make([]byte, 15), 0)...)) // AC: end of block
	sos := []byte{byte(n)}
	for i := range n {
		sos = append(sos, byte(i+1), 0x00)
	}
	if sof == 0xc2 {
		sos = append(sos, 0, 0, 0) // DC only
	} else {
		sos = append(sos, 0, 63, 0)
	}
	seg(0xda, sos)
	if !scan {
		return out.Bytes()
	}
	h0, v0 := int(hv>>4), int(hv&0x0f)
	mcus := ((w + 8*h0 - 1) / (8 * h0)) * ((h + 8*v0 - 1) / (8 * v0))
	bits := mcus * (h0*v0 + n - 1)
	if sof != 0xc2 {
		bits *= 2 // DC 0, then end of block
	}
	out.Write(make([]byte, (bits+7)/8))
	out.Write([]byte{0xff, 0xd9})
	return out.Bytes()
}

// craftWebP writes the header of a simple lossy WebP of w×h pixels.
func craftWebP(w, h int) []byte {
	vp8 := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8)}
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8 ")
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vp8)))
	b = append(b, vp8...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The decompression bomb of issue 12 is kept small (its first rows only)
// in testdata for other packages' tests.
func TestBombFile(t *testing.T) {
	got, err := os.ReadFile("testdata/bomb.png")
	if want := craftPNG(t, 8000, 8000, 16, 6, 0, 16); err != nil || !bytes.Equal(got, want) {
		if os.Getenv("UPDATE_TESTDATA") != "" {
			if err := os.WriteFile("testdata/bomb.png", want, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("testdata/bomb.png is not craftPNG's 8000x8000 16-bit bomb (UPDATE_TESTDATA=1 rewrites it): %v", err)
	}
}

// Images that would take more than MaxDecodeBytes to decode are refused
// from their header: the pixels are never allocated.
func TestBombsRefusedBeforeDecoding(t *testing.T) {
	for _, c := range []struct {
		name string
		img  []byte
	}{
		{"png 8000x8000 16-bit RGBA (issue 12)", craftPNG(t, 8000, 8000, 16, 6, 0, 16)},
		{"png 6000x6000 interlaced RGBA", craftPNG(t, 6000, 6000, 8, 6, 1, 16)},
		{"png 100000x100000 grey", craftPNG(t, 100000, 100000, 8, 0, 0, 1)},
		{"png 1x2^31-1", craftPNG(t, 1, 1<<31-1, 8, 0, 0, 1)},
		{"jpeg 8000x8000 progressive", craftJPEG(t, 8000, 8000, 3, 0x11, 0xc2, false)},
		{"jpeg 65535x65535 baseline grey", craftJPEG(t, 65535, 65535, 1, 0x11, 0xc0, false)},
		{"gif 65535x65535", []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00")},
		{"webp 16383x16383", craftWebP(16383, 16383)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Make(bytes.NewReader(c.img), 128) })
			if tl := (*TooLargeError)(nil); !errors.As(err, &tl) {
				t.Errorf("Make = %v, want a TooLargeError", err)
			}
			if n > 1<<20 {
				t.Errorf("refusing took %d KiB", n>>10)
			}
		})
	}
}

// The cost readHeader works out is an upper bound on what decoding and
// scaling allocate, for each decoder and the variants that cost the most.
// Each variant is measured at two sizes, and what the larger image
// allocates more must be within what its cost is more: the part of the
// cost that grows with the image is checked, not only the fixed part.
func TestCostBoundsAllocation(t *testing.T) {
	encode := func(img image.Image) []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	jpegOf := func(img image.Image) []byte {
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	fill := func(img image.Image) image.Image {
		var pix []uint8
		switch m := img.(type) {
		case *image.NRGBA:
			pix = m.Pix
		case *image.NRGBA64:
			pix = m.Pix
		case *image.Gray:
			pix = m.Pix
		case *image.Paletted:
			pix = m.Pix
		}
		for i := range pix {
			pix[i] = uint8(i*199 ^ i>>11)
		}
		return img
	}
	rect := func(w, h int) image.Rectangle { return image.Rect(0, 0, w, h) }
	webp, err := os.ReadFile("testdata/lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		img  func(w, h int) []byte
	}{
		{"png NRGBA", func(w, h int) []byte { return encode(fill(image.NewNRGBA(rect(w, h)))) }},
		{"png NRGBA64", func(w, h int) []byte { return encode(fill(image.NewNRGBA64(rect(w, h)))) }},
		{"png grey", func(w, h int) []byte { return encode(fill(image.NewGray(rect(w, h)))) }},
		{"png grey with tRNS", func(w, h int) []byte { return withTRNS(encode(fill(image.NewGray(rect(w, h))))) }},
		{"png paletted", func(w, h int) []byte { return encode(fill(image.NewPaletted(rect(w, h), palette.Plan9))) }},
		{"png interlaced 16-bit RGBA", func(w, h int) []byte { return craftPNG(t, w, h, 16, 6, 1, -1) }},
		{"png blocks of noise", func(w, h int) []byte { // noise at 128 px too: the thumbnail takes a few tries
			rnd := rand.New(rand.NewPCG(1, 2))
			img, n := image.NewNRGBA(rect(w, h)), w/128
			for y := 0; y < h; y += n {
				for x := 0; x < w; x += n {
					c := image.NewUniform(color.NRGBA{uint8(rnd.Uint32()), uint8(rnd.Uint32()), uint8(rnd.Uint32()), 255})
					draw.Draw(img, image.Rect(x, y, x+n, y+n), c, image.Point{}, draw.Src)
				}
			}
			return encode(img)
		}},
		{"jpeg baseline 4:2:0", func(w, h int) []byte { return jpegOf(fill(image.NewNRGBA(rect(w, h)))) }},
		{"jpeg made RGB by a last Adobe APP14", func(w, h int) []byte {
			b := jpegOf(fill(image.NewNRGBA(rect(w, h))))
			app14 := []byte{0xff, 0xee, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, 0} // transform 0: RGB
			return append(append(b[:len(b)-2:len(b)-2], app14...), 0xff, 0xd9)
		}},
		{"jpeg grey", func(w, h int) []byte { return jpegOf(fill(image.NewGray(rect(w, h)))) }},
		{"jpeg progressive 4:4:4", func(w, h int) []byte { return craftJPEG(t, w, h, 3, 0x11, 0xc2, true) }},
		{"jpeg progressive 4:2:0", func(w, h int) []byte { return craftJPEG(t, w, h, 3, 0x22, 0xc2, true) }},
		{"gif", func(w, h int) []byte { return gifOf(t, fill(image.NewPaletted(rect(w, h), palette.Plan9))) }},
		{"gif with a first frame inside its screen", func(w, h int) []byte {
			frame := fill(image.NewPaletted(image.Rect(w/4, h/4, w*3/4, h*3/4), palette.Plan9)).(*image.Paletted)
			var b bytes.Buffer
			if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
				Config: image.Config{ColorModel: color.Palette(palette.Plan9), Width: w, Height: h}}); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}},
		{"gif interlaced", func(w, h int) []byte {
			return interlacedGIF(t, gifOf(t, fill(image.NewPaletted(rect(w, h), palette.Plan9))))
		}},
		{"webp lossy", func(w, h int) []byte { return webp }}, // 600x400 whatever the size asked
	} {
		t.Run(c.name, func(t *testing.T) {
			var alloc, cost [2]int64
			for i, side := range []int{256, 1024} { // both make 128x96 thumbnails
				r := bytes.NewReader(c.img(side, side*3/4))
				hdr, err := readHeader(r, 128)
				if err != nil {
					t.Fatal(err)
				}
				var th Thumbnail
				alloc[i] = int64(allocated(func() { th, err = render(r, hdr, 128) }))
				if err != nil || len(th.Data) == 0 {
					t.Fatalf("render: %v", err)
				}
				cost[i] = hdr.cost
				if alloc[i] > cost[i] {
					t.Errorf("%dx%d: allocated %d KiB, over the cost of %d KiB", hdr.cfg.Width, hdr.cfg.Height, alloc[i]>>10, cost[i]>>10)
				}
			}
			const noise = 32 << 10 // the runtime's and the testing package's
			if alloc[1]-alloc[0] > cost[1]-cost[0]+noise {
				t.Errorf("a larger image allocated %d KiB more, its cost is %d KiB more", (alloc[1]-alloc[0])>>10, (cost[1]-cost[0])>>10)
			}
			t.Logf("allocated %d KiB, %d KiB more for the larger image; cost %d KiB, %d KiB more",
				alloc[1]>>10, (alloc[1]-alloc[0])>>10, cost[1]>>10, (cost[1]-cost[0])>>10)
		})
	}
}

func gifOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Phone photos stay within the bound: 12 MP (4000x3000) JPEGs baseline or
// progressive, 48 MP (8064x6048) baseline, a 4K (3840x2160) PNG.
func TestPhotosWithinBound(t *testing.T) {
	for _, c := range []struct {
		name string
		img  []byte
	}{
		{"12 MP baseline 4:2:0", craftJPEG(t, 4000, 3000, 3, 0x22, 0xc0, false)},
		{"12 MP progressive 4:2:0", craftJPEG(t, 4000, 3000, 3, 0x22, 0xc2, false)},
		{"48 MP baseline 4:2:0", craftJPEG(t, 8064, 6048, 3, 0x22, 0xc0, false)},
		{"4K PNG RGBA", craftPNG(t, 3840, 2160, 8, 6, 0, 1)},
	} {
		h, err := readHeader(bytes.NewReader(c.img), 128)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		t.Logf("%s: cost %d MB", c.name, h.cost/1e6)
	}
}

// Only the formats whose decoding cost is known are decoded: lossless
// WebP is refused.
func TestLosslessWebPRefused(t *testing.T) {
	b, err := os.ReadFile("testdata/lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Make(bytes.NewReader(b), 128); err == nil {
		t.Fatal("lossless WebP decoded")
	}
}

// A decoder some dependency registers with package image is not used:
// its cost is unknown.
func TestUnknownFormatRefused(t *testing.T) {
	decoded := false
	image.RegisterFormat("huge", "HUGE", func(io.Reader) (image.Image, error) {
		decoded = true
		return image.NewNRGBA64(image.Rect(0, 0, 8000, 8000)), nil
	}, func(io.Reader) (image.Config, error) {
		return image.Config{ColorModel: color.NRGBA64Model, Width: 100, Height: 100}, nil
	})
	if _, err := Make(strings.NewReader("HUGE"), 128); err == nil || decoded {
		t.Fatalf("Make = %v, decoded %v", err, decoded)
	}
}
