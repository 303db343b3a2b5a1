package client

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Classes of failure a caller can tell apart with errors.Is; the CLI gives
// each its own exit code.
var (
	ErrAuth        = errors.New("the server refused the login")
	ErrUnreachable = errors.New("cannot reach the server")
	ErrNoService   = errors.New("no XEP-0363 upload service found")
	ErrTimeout     = errors.New("timed out")

	// Slot refusals (a *StanzaError matches these with errors.Is).
	ErrFileTooLarge = errors.New("file too large")
	ErrForbidden    = errors.New("not allowed to upload")
	ErrQuota        = errors.New("upload quota reached")
	ErrBadRequest   = errors.New("the request was malformed")
)

// StanzaError is an error reply from an XMPP entity, with the XEP-0363
// details: the size limit of a file-too-large refusal and the retry stamp
// of a quota refusal. Text is the server's explanation, meant for people.
type StanzaError struct {
	By           string // who answered
	Type         string // cancel, modify, auth, wait, continue
	Condition    string // RFC 6120 defined condition, e.g. not-acceptable
	Text         string
	FileTooLarge bool   // a XEP-0363 <file-too-large/> was present
	MaxFileSize  int64  // its <max-file-size>, 0 if absent or unreadable
	RetryStamp   string // XEP-0363 <retry stamp='…'/>, "" if absent
}

func (e *StanzaError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s answered %s/%s", e.By, e.Type, e.Condition)
	if e.Text != "" {
		fmt.Fprintf(&b, ": %s", e.Text)
	}
	if e.FileTooLarge && e.MaxFileSize > 0 {
		fmt.Fprintf(&b, " (maximum %d bytes)", e.MaxFileSize)
	}
	if t, ok := e.Retry(); ok {
		fmt.Fprintf(&b, " (retry after %s)", t.Format(time.RFC3339))
	}
	return b.String()
}

// Retry is the time XEP-0363's <retry/> names, if the reply had a valid one.
func (e *StanzaError) Retry() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, e.RetryStamp)
	return t, err == nil
}

// Is classifies a slot refusal the way XEP-0363 defines the errors.
func (e *StanzaError) Is(target error) bool {
	switch target {
	case ErrFileTooLarge:
		return e.FileTooLarge || (e.Type == "modify" && e.Condition == "not-acceptable")
	case ErrForbidden:
		return e.Condition == "forbidden" || e.Condition == "not-allowed" || e.Type == "auth"
	case ErrQuota:
		return e.RetryStamp != "" || (e.Type == "wait" && e.Condition == "resource-constraint")
	case ErrBadRequest:
		return e.Condition == "bad-request"
	}
	return false
}

// HTTPError is a refused HTTP request. URL has no query: upload URLs carry
// their authorisation there.
type HTTPError struct {
	Method string
	URL    string
	Status int
	Text   string // start of the response body
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.Status)
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// RecipientError is a message the server or relay bounced.
type RecipientError struct {
	To  string
	Err *StanzaError
}

func (e *RecipientError) Error() string {
	return fmt.Sprintf("message to %s refused: %v", e.To, e.Err)
}

func (e *RecipientError) Unwrap() error { return e.Err }

// RedactURL drops the query and fragment of a URL for messages and logs:
// the query of an upload URL may authorise it and an aesgcm fragment is a key.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.User = "", "", "", nil
	return u.String()
}

func parseSize(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
