package refusal

import (
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"
)

// TestTable checks every row: a label, a stanza error type and condition
// RFC 6120 defines, and an HTTP error status.
func TestTable(t *testing.T) {
	types := map[stanza.ErrorType]bool{stanza.Auth: true, stanza.Cancel: true, stanza.Continue: true, stanza.Modify: true, stanza.Wait: true}
	labels := map[string]Kind{}
	for k := range Kind(len(table)) {
		if !types[k.Type()] {
			t.Errorf("%v: type %q", k, k.Type())
		}
		if k.Condition() == "" || k.Condition() == stanza.UndefinedCondition {
			t.Errorf("%v: condition %q", k, k.Condition())
		}
		if s := k.Status(); s < 400 || s > 599 || http.StatusText(s) == "" {
			t.Errorf("%v: HTTP status %d", k, s)
		}
		if other, dup := labels[k.String()]; dup || k.String() == "" {
			t.Errorf("%v: label %q, also %v's", k, k.String(), other)
		}
		labels[k.String()] = k
	}
	if Kind(len(table)).String() != "internal" || Kind(-1).Condition() != stanza.InternalServerError {
		t.Errorf("a kind outside the table: %q, %q", Kind(len(table)).String(), Kind(-1).Condition())
	}
}

// TestLabels pins the metric labels of slot refusals, which dashboards use.
func TestLabels(t *testing.T) {
	for k, want := range map[Kind]string{BadRequest: "bad_request", TooLarge: "too_large", Forbidden: "forbidden",
		Unavailable: "unavailable", OverQuota: "quota", Unsupported: "unsupported", Internal: "internal"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", k, got, want)
		}
	}
}

// TestStanza checks the wire form of each refusal with an application
// element, in both XEP-0363 namespaces, and of one without.
func TestStanza(t *testing.T) {
	const ns, legacy = "urn:xmpp:http:upload:0", "urn:xmpp:http:upload"
	retry := time.Date(2026, 9, 1, 10, 15, 0, 0, time.FixedZone("CEST", 2*3600))
	cases := []struct {
		err  *Error
		ns   string
		want string
	}{
		{&Error{Kind: TooLarge, Text: "File too large. Maximum is 100 bytes", MaxSize: 100}, ns,
			`<error type="modify"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></not-acceptable>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">File too large. Maximum is 100 bytes</text>` +
				`<file-too-large xmlns="urn:xmpp:http:upload:0"><max-file-size>100</max-file-size></file-too-large></error>`},
		{&Error{Kind: TooLarge, Text: "big", MaxSize: 7}, legacy,
			`<error type="modify"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></not-acceptable>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">big</text>` +
				`<file-too-large xmlns="urn:xmpp:http:upload"><max-file-size>7</max-file-size></file-too-large></error>`},
		{&Error{Kind: OverQuota, Text: "Daily quota & more", RetryAt: retry}, ns,
			`<error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></resource-constraint>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Daily quota &amp; more</text>` +
				`<retry xmlns="urn:xmpp:http:upload:0" stamp="2026-09-01T08:15:00Z"></retry></error>`},
		{&Error{Kind: OverQuota, Text: "Full"}, ns,
			`<error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></resource-constraint>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Full</text></error>`},
		{New(NotServed, ""), "",
			`<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error>`},
		{New(Forbidden, "Uploads are limited to accounts on %s", "example.net"), ns,
			`<error type="auth"><forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></forbidden>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Uploads are limited to accounts on example.net</text></error>`},
	}
	for _, c := range cases {
		b, err := xml.Marshal(c.err.Stanza(c.ns))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); got != c.want {
			t.Errorf("%v in %q:\n got %s\nwant %s", c.err.Kind, c.ns, got, c.want)
		}
		if !strings.Contains(c.want, string(c.err.Kind.Condition())) {
			t.Errorf("%v: the case names another condition", c.err.Kind)
		}
	}
}
