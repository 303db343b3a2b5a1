// Package redact keeps credentials out of mediaslot's logs: the HMAC
// tokens of slot PUT URLs (t=…), the signatures of S3 presigned URLs and
// Authorization headers, and the configured secrets themselves.
//
// mediaslot does not log URLs or secrets on purpose; this is the safety net
// under every log line, including those net/http writes through
// http.Server.ErrorLog, whose panic reports may quote anything.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Mask replaces what is redacted.
const Mask = "REDACTED"

// MinSecretLen is the shortest secret Handler replaces wherever it appears:
// a shorter one would mangle ordinary words, and is too weak to matter.
const MinSecretLen = 8

// credential matches the value of a query parameter or header field that
// authorises a request: the slot token t=, SigV4's X-Amz-Signature and
// X-Amz-Security-Token (presigned URLs), Signature= (Authorization headers).
var credential = regexp.MustCompile(`(?i)((?:[?&](?:t|x-amz-signature|x-amz-security-token)|\bsignature)=)[^&\s"'<>,;]+`)

// String returns s with credentials in URLs replaced by Mask.
func String(s string) string {
	if !mayHold(s) {
		return s
	}
	return credential.ReplaceAllString(s, "${1}"+Mask)
}

// mayHold is a cheap test that lets most strings skip the regular expression.
func mayHold(s string) bool {
	if !strings.Contains(s, "=") {
		return false
	}
	return strings.Contains(s, "t=") || strings.Contains(s, "T=") || strings.Contains(s, "ture=") ||
		strings.Contains(s, "TURE=") || strings.Contains(s, "oken=") || strings.Contains(s, "OKEN=")
}

// Handler wraps h so that every record's message and attribute values
// (strings, errors, Stringers, in groups too) are passed through String, and
// every secret of at least MinSecretLen bytes is replaced by Mask.
func Handler(h slog.Handler, secrets ...string) slog.Handler {
	var keep []string
	for _, s := range secrets {
		if len(s) >= MinSecretLen {
			keep = append(keep, s)
		}
	}
	return &handler{next: h, secrets: keep}
}

type handler struct {
	next    slog.Handler
	secrets []string
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.clean(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(clean), secrets: h.secrets}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), secrets: h.secrets}
}

func (h *handler) clean(s string) string {
	s = String(s)
	for _, secret := range h.secrets {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	return s
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); h.clean(s) != s {
			return slog.String(a.Key, h.clean(s))
		}
	case slog.KindGroup:
		g := v.Group()
		clean := make([]slog.Attr, len(g))
		for i, x := range g {
			clean[i] = h.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			return slog.Attr{Key: a.Key, Value: v}
		}
		if c := h.clean(s); c != s {
			return slog.String(a.Key, c)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
