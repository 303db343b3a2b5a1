package wire

import (
	"bytes"
	"encoding/xml"
	"testing"
)

// FuzzEscape: Escape writes what xml.EscapeText writes.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "a&b<c>d\"e'f\tg\nh\ri", "\x00\x1f\x7f\u00e9\ufffd\xff\xed\xa0\x80\U0010FFFF\uFFFE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want bytes.Buffer
		Escape(&got, s)
		_ = xml.EscapeText(&want, []byte(s))
		if got.String() != want.String() {
			t.Fatalf("%q:\n got %q\nwant %q", s, got.String(), want.String())
		}
	})
}
