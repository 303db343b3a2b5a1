// Package refusal is mediaslot's one registry of refusals, table-driven as
// Prosody's util.error registries are: each Kind has one row saying how it
// goes out as an RFC 6120 stanza error (type, defined condition and, for
// XEP-0363, the application element) and as an HTTP status. Slot requests,
// relay messages, the component's own IQs and refused PUTs all answer from
// this table, so a refusal reads the same whichever way it leaves, and a
// new one is a row here rather than a mapping in each package.
package refusal

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// Kind is one kind of refusal: a row of the table.
type Kind int

// The kinds of refusal. The comments name the stanza error and HTTP status
// of each; the table below is what counts.
const (
	BadRequest      Kind = iota // malformed request: modify/bad-request, 400
	TooLarge                    // a file over the size limit: modify/not-acceptable + XEP-0363 <file-too-large>, 413
	Forbidden                   // requester not allowed: auth/forbidden, 403
	Unavailable                 // mediaslot cannot serve this now: wait/service-unavailable, 503
	OverQuota                   // over a quota, a rate or a waiting room: wait/resource-constraint + XEP-0363 <retry> at RetryAt, 413
	Unsupported                 // an option mediaslot does not know (an upload purpose): cancel/feature-not-implemented, 501
	PolicyViolation             // a relay message over a limit (size, recipients): modify/policy-violation, 413
	NotAcceptable               // content that breaks its XEP (XEP-0231 data): modify/not-acceptable, 422
	NotFound                    // no such item (a disco node): cancel/item-not-found, 404
	NotServed                   // a request the component does not answer: cancel/service-unavailable, 501
	Internal                    // mediaslot failed: wait/internal-server-error, 500
)

// XEP-0363's application elements, written in the namespace of the request
// refused (the current one or the legacy one).
const (
	appFileTooLarge = "file-too-large"
	appRetry        = "retry"
)

// row is how one kind of refusal goes out.
type row struct {
	label     string // metric label
	typ       stanza.ErrorType
	condition stanza.Condition
	app       string // XEP-0363 application element, "" for none
	status    int    // HTTP
}

// table is the registry: one row per Kind.
var table = [...]row{
	BadRequest:      {"bad_request", stanza.Modify, stanza.BadRequest, "", http.StatusBadRequest},
	TooLarge:        {"too_large", stanza.Modify, stanza.NotAcceptable, appFileTooLarge, http.StatusRequestEntityTooLarge},
	Forbidden:       {"forbidden", stanza.Auth, stanza.Forbidden, "", http.StatusForbidden},
	Unavailable:     {"unavailable", stanza.Wait, stanza.ServiceUnavailable, "", http.StatusServiceUnavailable},
	OverQuota:       {"quota", stanza.Wait, stanza.ResourceConstraint, appRetry, http.StatusRequestEntityTooLarge},
	Unsupported:     {"unsupported", stanza.Cancel, stanza.FeatureNotImplemented, "", http.StatusNotImplemented},
	PolicyViolation: {"policy_violation", stanza.Modify, stanza.PolicyViolation, "", http.StatusRequestEntityTooLarge},
	NotAcceptable:   {"not_acceptable", stanza.Modify, stanza.NotAcceptable, "", http.StatusUnprocessableEntity},
	NotFound:        {"not_found", stanza.Cancel, stanza.ItemNotFound, "", http.StatusNotFound},
	NotServed:       {"not_served", stanza.Cancel, stanza.ServiceUnavailable, "", http.StatusNotImplemented},
	Internal:        {"internal", stanza.Wait, stanza.InternalServerError, "", http.StatusInternalServerError},
}

// row returns the kind's row; a kind outside the table, a bug, goes out
// as Internal.
func (k Kind) row() row {
	if k < 0 || int(k) >= len(table) {
		return table[Internal]
	}
	return table[k]
}

// String returns the kind as a metric label: bad_request, too_large,
// forbidden, unavailable, quota, ….
func (k Kind) String() string { return k.row().label }

// Type is the stanza error type of the kind.
func (k Kind) Type() stanza.ErrorType { return k.row().typ }

// Condition is the RFC 6120 defined condition of the kind.
func (k Kind) Condition() stanza.Condition { return k.row().condition }

// Status is the HTTP status of the kind.
func (k Kind) Status() int { return k.row().status }

// Error is a refusal. Text is meant for a person: clients display it.
type Error struct {
	Kind    Kind
	Text    string
	MaxSize int64     // for TooLarge: the size limit
	RetryAt time.Time // for OverQuota: when the request will pass; zero if it never will by waiting
}

func (e *Error) Error() string { return e.Text }

// New returns a refusal of kind k with a text made as fmt.Sprintf makes it.
func New(k Kind, format string, a ...any) *Error {
	return &Error{Kind: k, Text: fmt.Sprintf(format, a...)}
}

// Stanza returns the refusal as a stanza error to marshal into an IQ or a
// message; XEP-0363's application element, where the kind has one, is in
// ns, the namespace of the request refused.
func (e *Error) Stanza(ns string) *StanzaError { return &StanzaError{err: e, ns: ns} }

// StanzaError is a refusal as an RFC 6120 <error/>, written by mellium's
// stanza.Error with the application element after its text.
type StanzaError struct {
	err *Error
	ns  string
}

// MarshalXML implements xml.Marshaler.
func (s *StanzaError) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	e := s.err
	se := stanza.Error{Type: e.Kind.Type(), Condition: e.Kind.Condition(), Text: map[string]string{"": e.Text}}
	_, err := xmlstream.Copy(enc, se.Wrap(s.app()))
	return err
}

// app returns the XEP-0363 application element of the refusal, or nil.
func (s *StanzaError) app() xml.TokenReader {
	e := s.err
	var inner xml.TokenReader
	switch e.Kind.row().app {
	case appFileTooLarge:
		inner = xmlstream.Wrap(xmlstream.Token(xml.CharData(strconv.FormatInt(e.MaxSize, 10))),
			xml.StartElement{Name: xml.Name{Local: "max-file-size"}})
		return xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: s.ns, Local: appFileTooLarge}})
	case appRetry:
		if e.RetryAt.IsZero() {
			return nil
		}
		stamp := xml.Attr{Name: xml.Name{Local: "stamp"}, Value: e.RetryAt.UTC().Format(time.RFC3339)}
		return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: s.ns, Local: appRetry}, Attr: []xml.Attr{stamp}})
	}
	return nil
}
