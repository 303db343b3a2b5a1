package wire

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// A stanza's size, which the relay's bound on waiting stanzas counts, is
// about what it holds in memory also when it is made of many small
// tokens: 256 KiB of empty elements held 8 MiB and counted 128 KiB, so a
// sender's 128 waiting stanzas could hold 1 GiB where the bound meant 32 MiB.
func TestStanzaSizeCountsTokens(t *testing.T) {
	for name, inner := range map[string]string{
		"empty elements": strings.Repeat("<a/>", 256<<10/4),
		"attributes":     "<a " + attrs(250<<10) + "/>",
	} {
		raw := `<stream xmlns='jabber:component:accept'><message from='a@b/c' to='d'><x xmlns='a'>` + inner + `</x></message>`
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		st, err := Parse(raw) // the decoder is garbage once it returns
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		live := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
		if int64(st.Size)*4 < live {
			t.Errorf("%s: size %d, %d bytes live", name, st.Size, live)
		}
		runtime.KeepAlive(st)
	}
}

// attrs returns n bytes of distinct empty attributes.
func attrs(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString("b" + strconv.Itoa(i) + "='' ")
	}
	return b.String()
}
