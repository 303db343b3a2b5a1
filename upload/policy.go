package upload

import (
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is a client's request for an upload slot, already parsed from XMPP.
type Request struct {
	Owner       string // bare JID of the requester
	Domain      string // the requester's domain, for the allow-list
	Filename    string
	Size        int64
	ContentType string // "" when the client did not declare one
}

// Reason classifies why a slot was refused; the XMPP side maps each to the
// XEP-0363 error condition clients understand.
type Reason int

// Reasons a slot request is refused.
const (
	BadRequest  Reason = iota // malformed request: modify/bad-request
	TooLarge                  // over the size limit: modify/not-acceptable + <file-too-large>
	Forbidden                 // requester not allowed: auth/forbidden
	Unavailable               // mediaslot cannot issue slots now: wait/internal-server-error
)

// Refusal is the error Issue returns when it does not issue a slot. Text is
// meant for a person: clients display it.
type Refusal struct {
	Reason  Reason
	Text    string
	MaxSize int64 // for TooLarge
}

func (r *Refusal) Error() string { return r.Text }

func refuse(reason Reason, format string, a ...any) *Refusal {
	return &Refusal{Reason: reason, Text: fmt.Sprintf(format, a...)}
}

// maxFilenameBytes matches common file system limits (ext4, APFS, NTFS in UTF-16 units).
const maxFilenameBytes = 255

// checkFilename refuses names that cannot be a plain file name. Names never
// become paths in mediaslot, but they end up in URLs, in Content-Disposition
// and on recipients' disks, where separators and control characters do harm.
func checkFilename(name string) *Refusal {
	switch {
	case name == "":
		return refuse(BadRequest, "The filename is missing or empty")
	case len(name) > maxFilenameBytes:
		return refuse(BadRequest, "The filename is longer than %d bytes", maxFilenameBytes)
	case !utf8.ValidString(name):
		return refuse(BadRequest, "The filename is not valid UTF-8")
	case name == "." || name == "..":
		return refuse(BadRequest, "The filename %q is not a file name", name)
	case strings.ContainsAny(name, "/\\"):
		return refuse(BadRequest, "The filename must not contain / or \\")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return refuse(BadRequest, "The filename contains control characters")
		}
	}
	return nil
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
func (p Policy) check(r Request) *Refusal {
	// Strangers learn nothing about limits or formats.
	if !p.allowed(r.Domain) {
		return refuse(Forbidden, "Uploads are limited to accounts on %s", strings.Join(p.AllowedDomains, ", "))
	}
	if ref := checkFilename(r.Filename); ref != nil {
		return ref
	}
	if r.Size <= 0 {
		return refuse(BadRequest, "The size must be a positive number of bytes")
	}
	if r.ContentType != "" && normalType(r.ContentType) == "" {
		return refuse(BadRequest, "The content-type %q is not a media type", r.ContentType)
	}
	if r.Size > p.MaxFileSize {
		ref := refuse(TooLarge, "File too large. Maximum is %d bytes", p.MaxFileSize)
		ref.MaxSize = p.MaxFileSize
		return ref
	}
	return nil
}

func (p Policy) allowed(domain string) bool {
	for _, d := range p.AllowedDomains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// Policy decides which slot requests are granted.
type Policy struct {
	MaxFileSize    int64
	SlotLifetime   time.Duration
	AllowedDomains []string
}
