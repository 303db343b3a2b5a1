package upload

import (
	"mime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mediaslot/refusal"
)

// Request is a client's request for an upload slot, already parsed from XMPP.
type Request struct {
	Owner        string // bare JID of the requester
	Domain       string // the requester's domain, for the allow-list
	Filename     string
	Size         int64
	ContentType  string    // "" when the client did not declare one
	Purpose      Purpose   // XEP-0363 v1.2; "" means message
	ExpireBefore time.Time // for PurposeEphemeral: delete the file before this time
}

// Purpose is an XEP-0363 v1.2 upload purpose: it sets how long the file is kept.
type Purpose string

// The upload purposes mediaslot supports (and advertises).
const (
	PurposeMessage   Purpose = "message"   // shared in a chat: kept for Policy.FileLifetime
	PurposeProfile   Purpose = "profile"   // an avatar or similar: kept until deleted
	PurposeEphemeral Purpose = "ephemeral" // kept at most until ExpireBefore (and FileLifetime)
	PurposePermanent Purpose = "permanent" // kept until deleted
)

// Purposes lists the supported purposes, for service discovery.
var Purposes = []Purpose{PurposeMessage, PurposeProfile, PurposeEphemeral, PurposePermanent}

// maxFilenameBytes matches common file system limits (ext4, APFS, NTFS in UTF-16 units).
const maxFilenameBytes = 255

// checkFilename refuses names that cannot be a plain file name. Names never
// become paths in mediaslot, but they end up in URLs, in Content-Disposition
// and on recipients' disks, where separators and control characters do harm.
func checkFilename(name string) *refusal.Error {
	switch {
	case name == "":
		return refusal.New(refusal.BadRequest, "The filename is missing or empty")
	case len(name) > maxFilenameBytes:
		return refusal.New(refusal.BadRequest, "The filename is longer than %d bytes", maxFilenameBytes)
	case !utf8.ValidString(name):
		return refusal.New(refusal.BadRequest, "The filename is not valid UTF-8")
	case name == "." || name == "..":
		return refusal.New(refusal.BadRequest, "The filename %q is not a file name", name)
	case strings.ContainsAny(name, "/\\"):
		return refusal.New(refusal.BadRequest, "The filename must not contain / or \\")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return refusal.New(refusal.BadRequest, "The filename contains control characters")
		}
		if invisible(c) {
			return refusal.New(refusal.BadRequest, "The filename contains the invisible character U+%04X, which can disguise the file's real name or extension", c)
		}
	}
	return nil
}

// invisible reports the characters a file name must not hold because they
// change how the name looks without being seen: bidi overrides, embeddings,
// isolates and marks (U+202E shows "photo\u202egpj.exe" as "photoexe.jpg"),
// the other format characters (zero-width space, soft hyphen, byte order
// mark, tags) and the line and paragraph separators. The zero-width
// (non-)joiners stay allowed: Persian, Indic scripts and emoji sequences need
// them, and they cannot reorder or hide an extension.
func invisible(c rune) bool {
	return c != '\u200c' && c != '\u200d' && unicode.In(c, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Bidi_Control)
}

// normalType returns the media type of a Content-Type value, lower case and
// without parameters, or "" if it does not parse.
func normalType(v string) string {
	t, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return t
}

// check applies the slot policy to a request.
func (p Policy) check(r Request) *refusal.Error {
	// Strangers learn nothing about limits or formats.
	if ref := p.access(r.Owner, r.Domain); ref != nil {
		return ref
	}
	if ref := checkFilename(r.Filename); ref != nil {
		return ref
	}
	if r.Size <= 0 {
		return refusal.New(refusal.BadRequest, "The size must be a positive number of bytes")
	}
	if r.ContentType != "" && normalType(r.ContentType) == "" {
		return refusal.New(refusal.BadRequest, "The content-type %q is not a media type", r.ContentType)
	}
	if r.Size > p.MaxFileSize {
		ref := refusal.New(refusal.TooLarge, "File too large. Maximum is %d bytes", p.MaxFileSize)
		ref.MaxSize = p.MaxFileSize
		return ref
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// access applies the allow and deny lists: a denied JID or domain is
// refused even if allowed; otherwise the JID's domain or the JID itself must
// be allowed.
func (p Policy) access(owner, domain string) *refusal.Error {
	if contains(p.DeniedJIDs, owner) || contains(p.DeniedDomains, domain) {
		return refusal.New(refusal.Forbidden, "This account may not upload files")
	}
	if !contains(p.AllowedDomains, domain) && !contains(p.AllowedJIDs, owner) {
		return refusal.New(refusal.Forbidden, "Uploads are limited to accounts on %s", strings.Join(p.AllowedDomains, ", "))
	}
	return nil
}

// deleteAfter returns when a file of this request is deleted (zero: never).
func (p Policy) deleteAfter(r Request, now time.Time) (time.Time, *refusal.Error) {
	var def time.Time
	if p.FileLifetime > 0 {
		def = now.Add(p.FileLifetime)
	}
	switch r.Purpose {
	case "", PurposeMessage:
		return def, nil
	case PurposeProfile, PurposePermanent:
		return time.Time{}, nil
	case PurposeEphemeral:
		if r.ExpireBefore.IsZero() {
			return def, nil
		}
		// The sweeper runs every minute: delete early enough to be gone in time.
		t := r.ExpireBefore.Add(-2 * sweepInterval)
		if t.Before(now.Add(p.SlotLifetime)) {
			return time.Time{}, refusal.New(refusal.BadRequest, "expire-before must be later than %s", now.Add(p.SlotLifetime+2*sweepInterval).UTC().Format(time.RFC3339))
		}
		if !def.IsZero() && def.Before(t) {
			return def, nil
		}
		return t, nil
	}
	return time.Time{}, refusal.New(refusal.Unsupported, "The upload purpose %q is not supported", r.Purpose)
}

// Policy decides which slot requests are granted.
type Policy struct {
	MaxFileSize  int64
	SlotLifetime time.Duration
	// FileLifetime is how long files shared in messages are kept; 0 keeps
	// them until deleted.
	FileLifetime   time.Duration
	AllowedDomains []string // users of these domains may upload
	AllowedJIDs    []string // and these users of other domains
	DeniedDomains  []string // refused even if allowed above
	DeniedJIDs     []string
	Quota          Quota
	// SlotRate and SlotBurst bound slot requests per user (token bucket:
	// SlotRate a second on average, SlotBurst at once); 0 disables.
	SlotRate  float64
	SlotBurst int
	// MaxUploadsPerUser bounds a user's PUTs in progress at once; 0 disables.
	MaxUploadsPerUser int
}

// Quota bounds storage, counted from completed uploads and the sizes pending
// slots hold (see holds); 0 disables a bound.
type Quota struct {
	DailyBytes  int64 // per user, uploaded in any 24 hours
	UserBytes   int64 // per user, stored
	DomainBytes int64 // per domain, stored
	TotalBytes  int64 // all stored
}
