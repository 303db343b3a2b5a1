package aesgcm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Test case 15 of McGrew and Viega, "The Galois/Counter Mode of Operation"
// (AES-256, 96-bit IV, no additional data), as XEP-0454 uses it.
const (
	vecKey  = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
	vecIV   = "cafebabefacedbaddecaf888"
	vecText = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
		"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
	vecCipher = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
		"8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
	vecTag = "b094dac5d93471bdec1a502270e3cc6c"
)

func vectorKey(t *testing.T) Key {
	k := Key{IV: mustHex(t, vecIV)}
	copy(k.Key[:], mustHex(t, vecKey))
	return k
}

func TestKnownVector(t *testing.T) {
	k := vectorKey(t)
	plain := mustHex(t, vecText)
	sealed, err := k.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(sealed), vecCipher+vecTag; got != want {
		t.Fatalf("Seal:\n got %s\nwant %s (ciphertext, then the tag)", got, want)
	}
	if len(sealed) != len(plain)+TagSize {
		t.Errorf("sealed %d bytes, want plaintext+%d", len(sealed), TagSize)
	}
	opened, err := k.Open(sealed)
	if err != nil || !bytes.Equal(opened, plain) {
		t.Fatalf("Open: %v, %x", err, opened)
	}
}

func TestURLRoundTrip(t *testing.T) {
	k := vectorKey(t)
	link, err := k.URL("https://up.example.net/7f3c/photo%20%C3%A9t%C3%A9.jpg", false)
	if err != nil {
		t.Fatal(err)
	}
	want := "aesgcm://up.example.net/7f3c/photo%20%C3%A9t%C3%A9.jpg#" + vecIV + vecKey
	if link != want {
		t.Fatalf("URL:\n got %s\nwant %s", link, want)
	}
	if !IsURL(link) || IsURL("https://x/y") {
		t.Error("IsURL")
	}
	u, k2, err := ParseURL(link)
	if err != nil {
		t.Fatal(err)
	}
	if u.String() != "https://up.example.net/7f3c/photo%20%C3%A9t%C3%A9.jpg" {
		t.Errorf("ParseURL URL %s", u)
	}
	if !bytes.Equal(k2.IV, k.IV) || k2.Key != k.Key {
		t.Errorf("ParseURL key %x %x", k2.IV, k2.Key)
	}
}

func TestURLRefusesHTTP(t *testing.T) {
	k := vectorKey(t)
	if _, err := k.URL("http://up.example.net/a.jpg", false); err == nil {
		t.Fatal("converted a plain http URL")
	}
	link, err := k.URL("http://127.0.0.1:8080/a.jpg", true)
	if err != nil || !strings.HasPrefix(link, "aesgcm://127.0.0.1:8080/a.jpg#") {
		t.Fatalf("allowHTTP: %s %v", link, err)
	}
}

func TestLegacyIV(t *testing.T) {
	iv := strings.Repeat("ab", 16)
	u, k, err := ParseURL("aesgcm://h/f.png#" + iv + vecKey)
	if err != nil || len(k.IV) != 16 || u.Host != "h" {
		t.Fatalf("16-byte IV: %v %v", k.IV, err)
	}
	sealed, err := k.Seal([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := k.Open(sealed); err != nil || string(p) != "hello" {
		t.Fatalf("round trip with a 16-byte IV: %q %v", p, err)
	}
}

func TestBadInput(t *testing.T) {
	for _, link := range []string{
		"https://h/f#" + vecIV + vecKey,
		"aesgcm://h/f#" + vecIV,
		"aesgcm://h/f#zz" + vecKey,
		"aesgcm://h/f",
	} {
		if _, _, err := ParseURL(link); err == nil {
			t.Errorf("ParseURL(%q) accepted", link)
		}
	}
	k := vectorKey(t)
	sealed, _ := k.Seal([]byte("secret"))
	sealed[0] ^= 1
	if _, err := k.Open(sealed); !errors.Is(err, ErrAuth) {
		t.Errorf("tampered ciphertext: %v, want ErrAuth", err)
	}
	if _, err := k.Open([]byte("short")); err == nil {
		t.Error("opened a message shorter than the tag")
	}
}

func TestNewKeyIsRandom(t *testing.T) {
	a, _ := NewKey()
	b, _ := NewKey()
	if len(a.IV) != IVSize || bytes.Equal(a.IV, b.IV) || a.Key == b.Key {
		t.Fatal("NewKey repeats itself")
	}
}

func TestRandomName(t *testing.T) {
	a, b := RandomName("Holiday Été.JPG"), RandomName("x.jpg")
	if !strings.HasSuffix(a, ".jpg") || len(a) != 36 || a[:32] == b[:32] || strings.Contains(a, "Holiday") {
		t.Errorf("RandomName: %q %q", a, b)
	}
	if n := RandomName("archive.averyverylongextension"); len(n) != 32 {
		t.Errorf("long extension kept: %q", n)
	}
}
