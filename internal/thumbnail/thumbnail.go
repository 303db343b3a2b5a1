// Package thumbnail makes the small previews media messages carry inline
// (XEP-0264 thumbnails as XEP-0231 data): a PNG of a few kilobytes, made
// from a JPEG, PNG, GIF or WebP image, for the client and for the relay.
//
// Decoding is where a hostile image hurts: a 500 KB PNG can claim 8000x8000
// 16-bit pixels and make the decoder allocate half a gigabyte. So nothing
// is decoded before its header has been read and the memory the decoder
// will allocate has been worked out from it (cost); images that would take
// more than MaxDecodeBytes are refused, and a Maker keeps all the decodes
// it runs at once within MaxDecodeBytes together.
package thumbnail

import (
	"bufio"
	"bytes"
	"crypto/sha1" // #nosec G505 -- XEP-0231 cids are SHA-1
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	_ "image/gif" // decoders for image.Decode
	_ "image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

const (
	// MaxBytes is XEP-0231's SHOULD for inline data: larger stanzas risk
	// the server's stanza size limit.
	MaxBytes = 8 << 10
	// MaxDecodeBytes bounds the memory one decode and scale may allocate,
	// as cost works it out from the image's header, and what a Maker's
	// decodes hold together. 128 MiB keeps the photos phones send: a
	// 12 MP JPEG costs 32 MB (baseline 4:2:0) to 105 MB (progressive),
	// a 48 MP baseline one 101 MB, a 4K PNG 44 MB; the 8000x8000 16-bit
	// PNG of a decompression bomb would cost 548 MB.
	MaxDecodeBytes = 128 << 20
	// fixedCost is what a decode allocates whatever the image's size.
	fixedCost = 2 << 20
)

// Thumbnail is a small preview (XEP-0264) carried as XEP-0231 data.
type Thumbnail struct {
	Data          []byte
	MediaType     string // image/png for the ones Make makes
	Width, Height int    // as announced; receivers must not trust them for allocation
}

// CID is the XEP-0231 content id of the thumbnail: sha1+<hex>@bob.xmpp.org.
func (t Thumbnail) CID() string {
	sum := sha1.Sum(t.Data) // #nosec G401 -- XEP-0231 names data by SHA-1; not a security use
	return "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"
}

// Size returns the dimensions of an image in a format Go decodes (PNG,
// JPEG, GIF, WebP) without decoding the pixels.
func Size(r io.Reader) (width, height int, err error) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return 0, 0, err
	}
	return cfg.Width, cfg.Height, nil
}

// Make returns a PNG preview of an image at most maxSide pixels on each
// side and MaxBytes long, refusing images whose decoding would take more
// than MaxDecodeBytes. A reader that cannot seek is read into memory first
// (the sender's own file, for send).
func Make(r io.Reader, maxSide int) (Thumbnail, error) {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(r)
		if err != nil {
			return Thumbnail{}, err
		}
		rs = bytes.NewReader(b)
	}
	h, err := readHeader(rs, maxSide)
	if err != nil {
		return Thumbnail{}, err
	}
	return render(rs, h, maxSide)
}

// header is what readHeader learnt of an image before decoding it.
type header struct {
	start  int64 // offset of the image in its reader
	format string
	cfg    image.Config
	cost   int64 // bytes decoding and scaling it allocate at most
}

// TooLargeError refuses an image whose decoding would cost more than
// MaxDecodeBytes.
type TooLargeError struct {
	Format        string
	Width, Height int
	Cost          int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s image of %dx%d pixels would take %d MiB to decode, over the %d MiB bound: not making a thumbnail",
		e.Format, e.Width, e.Height, e.Cost>>20, MaxDecodeBytes>>20)
}

// readHeader reads the header of the image at the current offset of r and
// works out what decoding it would cost, leaving r where it found it.
// Only the formats whose decoders cost knows are accepted, whatever other
// decoders a dependency registers with package image.
func readHeader(r io.ReadSeeker, maxSide int) (header, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return header{}, err
	}
	h := header{start: start}
	if h.cfg, h.format, err = image.DecodeConfig(r); err != nil {
		return header{}, err
	}
	w, ht := int64(h.cfg.Width), int64(h.cfg.Height)
	if w <= 0 || ht <= 0 {
		return header{}, fmt.Errorf("%s image of %dx%d pixels: not making a thumbnail", h.format, w, ht)
	}
	// Every decoder allocates at least a byte a pixel: checking that first
	// keeps the products below from overflowing.
	if w*ht > MaxDecodeBytes {
		return header{}, &TooLargeError{Format: h.format, Width: h.cfg.Width, Height: h.cfg.Height, Cost: w * ht}
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return header{}, err
	}
	switch h.format {
	case "png":
		h.cost, err = pngCost(r)
	case "jpeg":
		h.cost, err = jpegCost(bufio.NewReader(r), h.cfg)
	case "gif":
		// The first frame, one palette index a pixel, twice when it is
		// interlaced; image/gif refuses a frame larger than the logical
		// screen DecodeConfig reports.
		h.cost = 2 * w * ht
	case "webp":
		h.cost, err = webpCost(r, h.cfg)
	default:
		err = fmt.Errorf("no decoding bound known for %s images: not making a thumbnail", h.format)
	}
	if err != nil {
		return header{}, err
	}
	// draw's kernel scalers keep a float64 RGBA row of the target width
	// for every source row, and the weights of about 4 source pixels a
	// row and a column (16 bytes each); the decoders' tables and buffers
	// and the PNG encoder of the thumbnail take about a megabyte more.
	dw, _ := fit(h.cfg.Width, h.cfg.Height, maxSide)
	h.cost += 32*int64(dw)*ht + 80*(w+ht) + fixedCost
	if h.cost > MaxDecodeBytes {
		return header{}, &TooLargeError{Format: h.format, Width: h.cfg.Width, Height: h.cfg.Height, Cost: h.cost}
	}
	_, err = r.Seek(start, io.SeekStart)
	return h, err
}

// pngCost: image/png allocates the image, 8 bytes a pixel for 16-bit
// samples, else 4, or 1 with a palette (greys too take 4: a tRNS chunk,
// which DecodeConfig's colour model ignores, makes them NRGBA), and two
// rows of raw samples; for an Adam7-interlaced image, the seven pass
// images besides, as many pixels again, and their rows.
func pngCost(r io.Reader) (int64, error) {
	// The IHDR chunk comes first: signature, length, type, width,
	// height, depth, colour type, compression, filter, interlace.
	var ihdr [29]byte
	if _, err := io.ReadFull(r, ihdr[:]); err != nil {
		return 0, err
	}
	w, h := int64(binary.BigEndian.Uint32(ihdr[16:])), int64(binary.BigEndian.Uint32(ihdr[20:]))
	depth, colorType, interlaced := ihdr[24], ihdr[25], ihdr[28] != 0
	bpp := int64(4)
	switch {
	case colorType == 3:
		bpp = 1
	case depth == 16:
		bpp = 8
	}
	img, rows := w*h*bpp, 2*(1+8*w)
	if interlaced {
		// the passes' rows add up to 2.75 image rows
		return 2*img + 3*rows, nil
	}
	return img + rows, nil
}

// webpCost accepts simple lossy WebP files only (a VP8 chunk first): they
// decode to 4:2:0 YCbCr, 1.5 bytes a pixel in 16x16 macroblocks, after
// the chunk is read into memory. Lossless and extended files (VP8L, VP8X)
// are refused: the Huffman tables of a VP8L stream can take over 100 MB
// whatever the dimensions.
func webpCost(r io.Reader, cfg image.Config) (int64, error) {
	var hdr [20]byte // RIFF, size, WEBP, chunk id, chunk size
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	if string(hdr[12:16]) != "VP8 " {
		return 0, fmt.Errorf("lossless or extended WebP (%q): not making a thumbnail", hdr[12:16])
	}
	mbw, mbh := (int64(cfg.Width)+15)/16, (int64(cfg.Height)+15)/16
	return mbw*mbh*(256*3/2+4) + int64(binary.LittleEndian.Uint32(hdr[16:20])), nil
}

// jpegCost reads what DecodeConfig does not tell: whether the JPEG is
// progressive and how its components are sampled. image/jpeg allocates
// a byte per sample of each component, padded to whole MCUs; a
// progressive image also keeps every coefficient (four bytes a sample)
// until the end; RGB and CMYK images are then converted to 4 bytes a
// pixel.
func jpegCost(r *bufio.Reader, cfg image.Config) (int64, error) {
	progressive, sof, err := jpegFrame(r)
	if err != nil {
		return 0, err
	}
	height, width := int(binary.BigEndian.Uint16(sof[1:])), int(binary.BigEndian.Uint16(sof[3:]))
	n := int(sof[5])
	if width != cfg.Width || height != cfg.Height || n < 1 || n > 4 || len(sof) < 6+3*n {
		return 0, errors.New("jpeg: start of frame differs from the decoded configuration")
	}
	hv := func(i int) (int64, int64) {
		if n == 1 {
			return 1, 1 // image/jpeg ignores a lone component's factors
		}
		return int64(sof[7+3*i] >> 4), int64(sof[7+3*i] & 0x0f)
	}
	h0, v0 := hv(0)
	if h0 == 0 || v0 == 0 {
		return 0, errors.New("jpeg: bad sampling factors")
	}
	mcux, mcuy := (int64(width)+8*h0-1)/(8*h0), (int64(height)+8*v0-1)/(8*v0)
	var samples int64
	for i := range n {
		h, v := hv(i)
		samples += 64 * mcux * mcuy * h * v
	}
	cost := samples
	if progressive {
		cost += 4 * samples
	}
	// DecodeConfig stops at the first scan, but image/jpeg decides at the
	// end whether three components are RGB: from their ids, from an Adobe
	// APP14 segment and a JFIF APP0 one, anywhere in the file. Only an
	// APP14 segment or RGB ids can make it convert.
	rgb := cfg.ColorModel == color.RGBAModel || cfg.ColorModel == color.CMYKModel
	needAPP14 := !rgb && n == 3 && !(sof[6] == 'R' && sof[9] == 'G' && sof[12] == 'B')
	if progressive || needAPP14 {
		blocks := map[byte]int64{}
		for i := range n {
			h, v := hv(i)
			blocks[sof[6+3*i]] += mcux * mcuy * h * v
		}
		work, app14, err := jpegScans(r, blocks)
		if err != nil {
			return 0, err
		}
		if progressive && work > maxScanWork {
			return 0, fmt.Errorf("progressive jpeg whose scans visit over %d coefficients (%dx%d pixels): not making a thumbnail", maxScanWork, width, height)
		}
		rgb = rgb || (needAPP14 && app14)
	}
	if rgb {
		cost += 4 * int64(width) * int64(height)
	}
	return cost, nil
}

// maxScanWork bounds the coefficients the scans of a progressive JPEG
// make image/jpeg visit. Memory does not bound its time: a scan of 40
// bytes (an AC refinement of the whole spectrum, in end-of-band runs)
// visits all 63 coefficients of every block, 22 ms for 4096x4096 pixels,
// and nothing limits the scans, so a 400 KB file took minutes of CPU, of
// which the time budget stops only what comes after the next read (4 KB of
// scans, 2.5 s). Photos visit each coefficient two or three times: a
// 48 MP one about 0.2 billion, a progressive image at MaxDecodeBytes at
// most 0.1 billion a scan of its whole spectrum.
const maxScanWork = 1 << 30

// jpegScans walks the segments after the frame header, as image/jpeg
// does, to the end of the image: it returns the coefficients its scans
// visit (each scan's blocks, by component id, times its spectral band),
// stopping once past maxScanWork, and whether an APP14 segment is there.
// A file cut short ends the walk: the decoder refuses it.
func jpegScans(r *bufio.Reader, blocks map[byte]int64) (work int64, app14 bool, err error) {
	marker, err := jpegMarker(r)
	for err == nil {
		switch {
		case marker == 0xd9: // EOI
			return work, app14, nil
		case 0xd0 <= marker && marker <= 0xd7: // RST
			marker, err = jpegMarker(r)
			continue
		}
		app14 = app14 || marker == 0xee
		var l [2]byte
		if _, err = io.ReadFull(r, l[:]); err != nil {
			break
		}
		n := max(0, int(binary.BigEndian.Uint16(l[:]))-2)
		if marker != 0xda {
			if _, err = r.Discard(n); err == nil {
				marker, err = jpegMarker(r)
			}
			continue
		}
		seg := make([]byte, n)
		if _, err = io.ReadFull(r, seg); err != nil {
			break
		}
		// SOS: components (id, tables), band start and end, approximation
		if ns := len(seg) - 3; len(seg) > 0 && ns >= 2*int(seg[0]) {
			ns = int(seg[0])
			band := int64(seg[1+2*ns+1]) - int64(seg[1+2*ns]) + 1
			for i := range ns {
				work += blocks[seg[1+2*i]] * max(0, band)
			}
		}
		if work > maxScanWork {
			return work, app14, nil
		}
		marker, err = endOfScan(r)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return work, app14, err
}

// endOfScan reads a scan's entropy-coded data and the marker that ends
// it: in the data, FF is followed by 00 (a stuffed FF) or a restart
// marker.
func endOfScan(r *bufio.Reader) (byte, error) {
	for {
		if _, err := r.ReadSlice(0xff); err != nil && err != bufio.ErrBufferFull {
			return 0, err
		} else if err != nil {
			continue
		}
		next, err := r.Peek(1)
		if err != nil {
			return 0, err
		}
		if m := next[0]; m != 0 && m != 0xff && (m < 0xd0 || m > 0xd7) {
			_, err := r.ReadByte()
			return m, err
		}
	}
}

// jpegMarker reads the next marker as image/jpeg does: extraneous bytes
// before it and fill bytes are skipped, and a 00 after FF is no marker.
func jpegMarker(r *bufio.Reader) (byte, error) {
	var m [2]byte
	for {
		if _, err := io.ReadFull(r, m[:]); err != nil {
			return 0, err
		}
		for m[0] != 0xff { // extraneous data, skipped
			m[0] = m[1]
			var err error
			if m[1], err = r.ReadByte(); err != nil {
				return 0, err
			}
		}
		marker := m[1]
		if marker == 0 {
			continue
		}
		for marker == 0xff { // fill bytes
			var err error
			if marker, err = r.ReadByte(); err != nil {
				return 0, err
			}
		}
		return marker, nil
	}
}

// jpegFrame walks the segments of a JPEG as image/jpeg's decoder does, up
// to the first start of frame (image/jpeg refuses a second), and returns
// its contents. Reading the same markers in the same way is what makes
// the frame the one the decoder will use.
func jpegFrame(r *bufio.Reader) (progressive bool, sof []byte, err error) {
	var m [2]byte
	if _, err := io.ReadFull(r, m[:]); err != nil {
		return false, nil, err
	}
	if m != [2]byte{0xff, 0xd8} {
		return false, nil, errors.New("jpeg: missing SOI marker")
	}
	for {
		marker, err := jpegMarker(r)
		if err != nil {
			return false, nil, err
		}
		if 0xd0 <= marker && marker <= 0xd7 { // RST
			continue
		}
		if marker == 0xd9 || marker == 0xda { // EOI, SOS
			return false, nil, errors.New("jpeg: missing SOF marker")
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return false, nil, err
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 {
			return false, nil, errors.New("jpeg: short segment length")
		}
		switch marker {
		case 0xc0, 0xc1, 0xc2:
			sof = make([]byte, n)
			_, err := io.ReadFull(r, sof)
			return marker == 0xc2, sof, err
		}
		if _, err := r.Discard(n); err != nil {
			return false, nil, err
		}
	}
}

// render decodes the image readHeader accepted and scales it down. Photos
// rarely fit 8 KB as full-colour PNG at 96 px, so it falls back to a
// 216-colour palette and then to smaller sides until the PNG fits.
func render(r io.ReadSeeker, h header, maxSide int) (Thumbnail, error) {
	if _, err := r.Seek(h.start, io.SeekStart); err != nil {
		return Thumbnail{}, err
	}
	src, format, err := image.Decode(r)
	if err != nil {
		return Thumbnail{}, err
	}
	// A GIF's first frame may be smaller than its screen, never larger.
	if b := src.Bounds(); format != h.format || b.Dx() > h.cfg.Width || b.Dy() > h.cfg.Height {
		return Thumbnail{}, fmt.Errorf("decoded %s image of %v is larger than its header says", format, b)
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression, BufferPool: new(encoderBuffer)}
	// Smaller sides are scaled from the first thumbnail, not from the
	// image again: one pass over the image, one scaler buffer its size.
	first := scale(src, maxSide)
	for side := maxSide; side >= 8; side = side * 3 / 4 {
		scaled := first
		if side < maxSide {
			scaled = scale(first, side)
		}
		for _, img := range []image.Image{scaled, toPalette(scaled)} {
			var out bytes.Buffer
			if err := enc.Encode(&out, img); err != nil {
				return Thumbnail{}, err
			}
			if out.Len() <= MaxBytes {
				b := img.Bounds()
				return Thumbnail{Data: out.Bytes(), MediaType: "image/png", Width: b.Dx(), Height: b.Dy()}, nil
			}
		}
	}
	return Thumbnail{}, errors.New("no thumbnail fits in 8 KB") // unreachable: 8x8 paletted is < 1 KB
}

// encoderBuffer keeps the PNG encoder's compressor (most of a megabyte)
// for the next attempt at a smaller side.
type encoderBuffer struct{ b *png.EncoderBuffer }

func (p *encoderBuffer) Get() *png.EncoderBuffer  { return p.b }
func (p *encoderBuffer) Put(b *png.EncoderBuffer) { p.b = b }

// fit returns the size of a w×h image fitted into side×side, keeping its
// aspect ratio, never enlarging.
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, h*side/w)
	}
	return max(1, w*side/h), side
}

// scale fits src into side×side.
func scale(src image.Image, side int) *image.RGBA {
	b := src.Bounds()
	w, h := fit(b.Dx(), b.Dy(), side)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// toPalette maps img to the 216-colour web-safe palette:
// one byte per pixel instead of four, with no dithering noise to hurt the
// compression.
func toPalette(img *image.RGBA) *image.Paletted {
	p := image.NewPaletted(img.Bounds(), palette.WebSafe)
	draw.Draw(p, p.Bounds(), img, img.Bounds().Min, draw.Src)
	return p
}
