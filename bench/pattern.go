package bench

import (
	"bytes"
	"fmt"
	"io"
)

// patternTable is one period of the pattern: byte i of a body is byte(i).
var patternTable = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// Pattern is an endless body whose byte at offset i is byte(i). It costs no
// allocation and little CPU, so that the load generator is not what limits
// a throughput measurement, and a download can be checked without keeping
// the upload.
type Pattern struct{ off int64 }

func (p *Pattern) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], patternTable[(p.off+int64(n))%256:])
		n += c
	}
	p.off += int64(n)
	return n, nil
}

// Body returns size bytes of the pattern.
func Body(size int64) io.Reader { return io.LimitReader(&Pattern{}, size) }

// patternChecker is a Writer that checks that what is written is the pattern.
type patternChecker struct {
	off int64
	bad error
}

func (c *patternChecker) Write(b []byte) (int, error) {
	for n := 0; n < len(b); {
		start := (c.off + int64(n)) % 256
		m := min(len(b)-n, len(patternTable)-int(start))
		if want := patternTable[start : start+int64(m)]; c.bad == nil && !bytes.Equal(b[n:n+m], want) {
			i := 0
			for b[n+i] == want[i] {
				i++
			}
			c.bad = fmt.Errorf("downloaded bytes differ from the upload at offset %d", c.off+int64(n+i))
		}
		n += m
	}
	c.off += int64(len(b))
	return len(b), nil
}
