// Package store defines the blob storage behind mediaslot: one small
// interface that the embedded disk store (store/disk) and the S3 store
// implement, the optional capabilities a store may add (Presigner,
// Checker), and the errors every implementation reports the same way
// (store/storetest checks that they do; store/memstore is an in-memory
// store with every capability, for unit tests).
package store

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// Errors shared by every Store, compared with errors.Is.
var (
	// ErrNotFound: no object under that key.
	ErrNotFound = errors.New("store: object not found")
	// ErrExists: an object already exists under that key; objects are written once.
	ErrExists = errors.New("store: object already exists")
	// ErrSize: the body was shorter or longer than the declared size.
	ErrSize = errors.New("store: body size differs from declared size")
	// ErrKey: the key is not one a Store accepts (see ValidKey).
	ErrKey = errors.New("store: invalid key")
)

// Info describes a stored object.
type Info struct {
	Size        int64
	ContentType string // as stored with the object; "" where a store keeps none (disk)
}

// Store keeps immutable blobs under keys chosen by mediaslot (slot ids).
type Store interface {
	// Put stores exactly size bytes read from r under key. It is atomic:
	// readers see the whole object or none, and on any error (ErrSize when r
	// yields fewer or more bytes, a read error, ctx done) nothing is left.
	// A second Put of the same key fails with ErrExists.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open returns the object's bytes. Implementations return an *os.File
	// where they can, so that net/http serves it with sendfile.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, error)
	// Stat reports an object's size, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes an object; deleting a missing object is ErrNotFound.
	Delete(ctx context.Context, key string) error
}

// ValidKey reports whether key is acceptable to every Store: 1 to 128 bytes of
// ASCII letters, digits, '-' and '_'. Keys never come from client input
// directly, but a store must never let one name a path outside itself.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > 128 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Checker is implemented by stores that can tell whether they can take
// files now (the disk store: its directory is writable; S3: endpoint,
// credentials, bucket), so that upload refuses slots at once while they
// cannot instead of handing out URLs that fail.
type Checker interface {
	// Check reports, in words an operator can act on, why the store cannot
	// take a new file now, or nil.
	Check(ctx context.Context) error
}

// Presigner is implemented by stores that clients upload to and download from directly.
type Presigner interface {
	// PresignPut returns a URL that accepts a PUT of exactly size bytes of
	// contentType to key until ttl passes, and the headers the client must
	// send with it.
	PresignPut(ctx context.Context, key string, size int64, contentType string, ttl time.Duration) (url string, headers http.Header, err error)
	// PresignGet returns a short-lived URL that GETs key. The answer carries
	// the given Content-Type and Content-Disposition when they are not "".
	PresignGet(ctx context.Context, key string, ttl time.Duration, contentType, disposition string) (string, error)
	// Seal makes what a client uploaded with key's presigned PUT URL the
	// object under key, if it has size bytes. The URL accepts PUTs until
	// it expires, so a sealed object must be out of its reach: later PUTs
	// to it change nothing that Stat, Open, PresignGet or PublicURL serve.
	// Seal returns the object's Info; ErrNotFound when nothing was
	// uploaded; ErrSize, with the Info of the upload, when it has another
	// size, after deleting it so that the client may try again. Sealing a
	// sealed key returns its Info.
	Seal(ctx context.Context, key string, size int64) (Info, error)
	// PublicURL returns the address of key's object under base, the URL of
	// the bucket (or of a CDN in front of it) as anonymous clients reach it.
	PublicURL(base, key string) (string, error)
}
