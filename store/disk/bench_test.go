package disk

import (
	"context"
	"fmt"
	"io"
	"testing"
)

const benchSize = 64 << 20

// pattern is an endless, allocation-free body.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// BenchmarkPut is the store alone, without HTTP: a 64 MiB body copied into
// a temporary file, fsync'd, linked into place and the directory fsync'd.
func BenchmarkPut(b *testing.B) {
	st, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(benchSize)
	for i := range b.N {
		key := fmt.Sprintf("k%d", i)
		if err := st.Put(ctx, key, io.LimitReader(pattern{}, benchSize), benchSize); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := st.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
