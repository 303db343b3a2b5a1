package upload

import (
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzCheckFilename: the filename check never panics, and every name it
// accepts is safe in a URL path segment, in Content-Disposition and on a
// recipient's disk: one segment, valid UTF-8, no control characters, and it
// survives escaping for the URL unchanged.
func FuzzCheckFilename(f *testing.F) {
	for _, s := range []string{"photo été.jpg", "", ".", "..", "a/b", `a\b`, "a\x00b", "a\nb", strings.Repeat("é", 200), "\xff", "ok..name", "%2e%2e", "photo\u202egpj.exe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkFilename(name) != nil {
			return
		}
		if name == "" || name == "." || name == ".." || len(name) > maxFilenameBytes || !utf8.ValidString(name) || strings.ContainsAny(name, "/\\") {
			t.Fatalf("accepted %q", name)
		}
		for _, c := range name {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
				t.Fatalf("accepted a control character in %q", name)
			}
			if unicode.Is(unicode.Bidi_Control, c) {
				t.Fatalf("accepted a bidi control in %q", name)
			}
		}
		esc := url.PathEscape(name)
		if strings.Contains(esc, "/") {
			t.Fatalf("escaped name %q spans path segments", esc)
		}
		if back, err := url.PathUnescape(esc); err != nil || back != name {
			t.Fatalf("escaping %q does not round-trip: %q %v", name, back, err)
		}
	})
}

// FuzzVerifyToken: a token verifies exactly when it is the token of those
// slot facts; nothing else opens a slot, whatever the input.
func FuzzVerifyToken(f *testing.F) {
	s := newSigner([]byte("0123456789abcdef0123456789abcdef"))
	exp := time.Unix(1764057600, 0)
	real := s.token("0123456789abcdef0123456789abcdef", 100, "image/jpeg", exp)
	f.Add(real, "0123456789abcdef0123456789abcdef", int64(100), "image/jpeg", int64(1764057600))
	f.Add(real, "0123456789abcdef0123456789abcdef", int64(101), "image/jpeg", int64(1764057600))
	f.Add(real[:len(real)-1]+"A", "0123456789abcdef0123456789abcdef", int64(100), "image/jpeg", int64(1764057600))
	f.Add("", "", int64(0), "", int64(0))
	f.Fuzz(func(t *testing.T, tok, id string, size int64, ctype string, unix int64) {
		e := time.Unix(unix, 0)
		want := tok == s.token(id, size, ctype, e)
		if got := s.verify(tok, id, size, ctype, e); got != want {
			t.Fatalf("verify(%q, %q, %d, %q, %d) = %v, want %v", tok, id, size, ctype, unix, got, want)
		}
		if tok != real && s.verify(tok, "0123456789abcdef0123456789abcdef", 100, "image/jpeg", exp) {
			t.Fatalf("forged token %q accepted", tok)
		}
	})
}
