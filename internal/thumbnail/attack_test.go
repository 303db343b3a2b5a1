package thumbnail

import (
	"bytes"
	"encoding/binary"
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
