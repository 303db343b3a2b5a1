package thumbnail

import (
	"bytes"
	"compress/lzw"
	"compress/zlib"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// scanBomb is a grey progressive JPEG of w×h pixels (multiples of 8) with
// scans AC refinement scans over the whole spectrum: each is 40 bytes,
// four EOB runs of 16384 blocks, yet makes image/jpeg visit all 63
// coefficients of every block. Nothing in the format limits the scans.
func scanBomb(w, h, scans int) []byte {
	var b bytes.Buffer
	seg := func(marker byte, body ...byte) {
		b.Write([]byte{0xff, marker})
		_ = binary.Write(&b, binary.BigEndian, uint16(len(body)+2))
		b.Write(body)
	}
	b.Write([]byte{0xff, 0xd8})
	seg(0xdb, append([]byte{0}, bytes.Repeat([]byte{1}, 64)...)...)
	seg(0xc2, 8, byte(h>>8), byte(h), byte(w>>8), byte(w), 1, 1, 0x11, 0)
	// one code of one bit each: DC size 0, AC EOB run of 2^14 blocks
	huff := func(class, sym byte) []byte {
		return append(append([]byte{class << 4, 1}, make([]byte, 15)...), sym)
	}
	seg(0xc4, huff(0, 0)...)
	seg(0xc4, huff(1, 0xe0)...)
	blocks := (w / 8) * (h / 8)
	runs := (blocks + 16383) / 16384
	data := make([]byte, (runs*15+7)/8) // code 0 and 14 zero bits a run
	for range scans {
		seg(0xda, 1, 1, 0x00, 1, 63, 0x10) // Ss 1, Se 63, Ah 1, Al 0
		b.Write(data)
	}
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// A progressive JPEG whose scans would keep the decoder busy for minutes
// (memory bounds nothing here: 4096x4096 grey pixels cost 98 MiB) is
// refused from its header, before decoding, and so is a fraction of such
// a file; a sound progressive JPEG of the same size still decodes.
func TestScanBombRefusedBeforeDecoding(t *testing.T) {
	for _, scans := range []int{10000, 100} {
		data := scanBomb(4096, 4096, scans)
		_, err := readHeader(bytes.NewReader(data), 128)
		if err == nil || !strings.Contains(err.Error(), "scans visit over") {
			t.Errorf("%d scans: %v", scans, err)
		}
	}
	// the standard script's 6 scans of a grey image
	if _, err := readHeader(bytes.NewReader(scanBomb(4096, 4096, 6)), 128); err != nil {
		t.Fatal(err)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	io.ReadSeeker
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	r.n += int64(n)
	return n, err
}

// A 1x1 PNG whose IDAT inflates to 64 MiB (a zlib bomb of 64 KB), with a
// 1 MB ancillary chunk (zTXt, which image/png does not inflate) before it:
// the decoder inflates one row and one byte more and refuses the rest,
// reading the file once; the thumbnail costs nothing like the bomb.
func TestPNGZlibBombReadsLittle(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write(make([]byte, 64<<20))
	_ = zw.Close()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	b.Write(pngChunk("IHDR", []byte{0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0}))
	b.Write(pngChunk("zTXt", append([]byte("k\x00\x00"), z.Bytes()...)))
	b.Write(pngChunk("IDAT", z.Bytes()))
	b.Write(pngChunk("IEND", nil))
	r := &countingReader{ReadSeeker: bytes.NewReader(b.Bytes())}
	_, err := Make(r, 128)
	if err == nil {
		t.Fatal("a PNG of too much pixel data was accepted")
	}
	if r.n > 3*int64(b.Len()) {
		t.Errorf("read %d bytes of a %d-byte file", r.n, b.Len())
	}
	t.Log(err, r.n, b.Len())
}

// A 1x1 GIF whose LZW data decodes to 64 MiB: image/gif decodes one pixel
// and refuses the rest without inflating it.
func TestGIFLZWBombReadsLittle(t *testing.T) {
	var l bytes.Buffer
	lw := lzw.NewWriter(&l, lzw.LSB, 8)
	_, _ = lw.Write(make([]byte, 64<<20))
	_ = lw.Close()
	var b bytes.Buffer
	b.WriteString("GIF89a")
	b.Write([]byte{1, 0, 1, 0, 0xf7, 0, 0}) // 1x1, a global table of 256 colours
	b.Write(make([]byte, 3*256))
	b.Write([]byte{0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 8}) // image descriptor, LZW minimum code size 8
	data := l.Bytes()
	for len(data) > 0 {
		n := min(255, len(data))
		b.WriteByte(byte(n))
		b.Write(data[:n])
		data = data[n:]
	}
	b.Write([]byte{0, 0x3b})
	r := &countingReader{ReadSeeker: bytes.NewReader(b.Bytes())}
	_, err := Make(r, 128)
	if err == nil {
		t.Fatal("a GIF of too much image data was accepted")
	}
	if r.n > 3*int64(b.Len()) {
		t.Errorf("read %d bytes of a %d-byte file", r.n, b.Len())
	}
	t.Log(err, r.n, b.Len())
}
