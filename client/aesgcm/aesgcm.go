// Package aesgcm implements XEP-0454 (OMEMO Media Sharing): a file is
// encrypted with AES-256-GCM under a fresh key, the ciphertext with the tag
// appended is uploaded, and the key travels in the fragment of an aesgcm://
// URL, which HTTP clients never send to the server. The upload service only
// ever sees ciphertext.
//
// GCM authenticates the message as a whole and the standard library has no
// streaming Open, so both directions work on byte slices; callers bound their
// size (the service's max-file-size, a download limit).
package aesgcm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

const (
	// Scheme is the URL scheme of XEP-0454 links.
	Scheme = "aesgcm"
	// KeySize is the AES-256 key length.
	KeySize = 32
	// IVSize is the nonce length XEP-0454 prescribes.
	IVSize = 12
	// legacyIVSize is the nonce length early Conversations versions used;
	// receivers still meet it, so ParseURL accepts it.
	legacyIVSize = 16
	// TagSize is what encryption adds to the plaintext: the GCM tag,
	// appended to the ciphertext. Upload slots are requested for
	// plaintext size + TagSize.
	TagSize = 16
)

// Key is the secret of one file: the nonce and the AES-256 key.
type Key struct {
	IV  []byte // 12 bytes; 16 in legacy links
	Key [KeySize]byte
}

// NewKey returns a random key and nonce. A key encrypts exactly one file.
func NewKey() (Key, error) {
	k := Key{IV: make([]byte, IVSize)}
	if _, err := rand.Read(k.IV); err != nil {
		return Key{}, err
	}
	if _, err := rand.Read(k.Key[:]); err != nil {
		return Key{}, err
	}
	return k, nil
}

func (k Key) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.Key[:])
	if err != nil {
		return nil, err
	}
	switch len(k.IV) {
	case IVSize:
		return cipher.NewGCM(block)
	case legacyIVSize:
		return cipher.NewGCMWithNonceSize(block, legacyIVSize)
	}
	return nil, fmt.Errorf("aesgcm: IV of %d bytes, want %d", len(k.IV), IVSize)
}

// Seal encrypts plaintext and returns the ciphertext with the tag appended,
// len(plaintext)+TagSize bytes: what XEP-0454 uploads.
func (k Key) Seal(plaintext []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	return g.Seal(make([]byte, 0, len(plaintext)+TagSize), k.IV, plaintext, nil), nil
}

// ErrAuth means the ciphertext or the key was altered: the tag does not match.
var ErrAuth = errors.New("aesgcm: the file was altered or the key is wrong (GCM tag mismatch)")

// Open decrypts what Seal produced. It decrypts in place: ciphertext is
// overwritten.
func (k Key) Open(ciphertext []byte) ([]byte, error) {
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < TagSize {
		return nil, fmt.Errorf("aesgcm: %d bytes is shorter than the GCM tag", len(ciphertext))
	}
	p, err := g.Open(ciphertext[:0], k.IV, ciphertext, nil)
	if err != nil {
		return nil, ErrAuth
	}
	return p, nil
}

// URL turns the https GET URL of the uploaded ciphertext into the aesgcm://
// link to share: same host and path, the fragment holding the hex IV then the
// hex key. XEP-0454 forbids converting non-https URLs (the transport would
// then expose who fetches what, and many receivers fetch aesgcm links over
// https only); allowHTTP permits it for test setups without TLS.
func (k Key) URL(getURL string, allowHTTP bool) (string, error) {
	u, err := url.Parse(getURL)
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	default:
		return "", fmt.Errorf("aesgcm: XEP-0454 only converts https URLs, not %s://", u.Scheme)
	}
	u.Scheme = Scheme
	u.Fragment, u.RawFragment = "", ""
	return u.String() + "#" + hex.EncodeToString(k.IV) + hex.EncodeToString(k.Key[:]), nil
}

// ParseURL splits an aesgcm:// link into the https URL of the ciphertext and
// its key. Both the 12-byte IV of XEP-0454 and the legacy 16-byte IV are
// accepted.
func ParseURL(link string) (*url.URL, Key, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, Key{}, err
	}
	if !strings.EqualFold(u.Scheme, Scheme) {
		return nil, Key{}, fmt.Errorf("aesgcm: not an %s:// URL", Scheme)
	}
	secret, err := hex.DecodeString(u.Fragment)
	if err != nil {
		return nil, Key{}, errors.New("aesgcm: the URL fragment is not hex")
	}
	var k Key
	switch len(secret) {
	case IVSize + KeySize, legacyIVSize + KeySize:
		ivLen := len(secret) - KeySize
		k.IV = secret[:ivLen]
		copy(k.Key[:], secret[ivLen:])
	default:
		return nil, Key{}, fmt.Errorf("aesgcm: the URL fragment holds %d bytes, want %d (IV and key)", len(secret), IVSize+KeySize)
	}
	u.Scheme = "https"
	u.Fragment, u.RawFragment = "", ""
	return u, k, nil
}

// RandomName is the name to upload an encrypted file under: random, with
// the original's extension (lower case, if short) so that receivers still
// know what kind of file the link leads to. The service learns nothing else
// of the name.
func RandomName(original string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	ext := strings.ToLower(path.Ext(original))
	if len(ext) > 10 || strings.ContainsAny(ext, "/\\") {
		ext = ""
	}
	return hex.EncodeToString(b) + ext
}

// IsURL reports whether s is an aesgcm:// link.
func IsURL(s string) bool {
	return len(s) > len(Scheme)+3 && strings.EqualFold(s[:len(Scheme)+3], Scheme+"://")
}
