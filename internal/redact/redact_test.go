package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

const (
	putURL     = "https://up.example.net/upload/0123456789abcdef0123456789abcdef/a.jpg?e=1764057600&t=Zm9vYmFyYmF6cXV4"
	presigned  = "http://127.0.0.1:7070/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261125T090000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=content-length%3Bhost&X-Amz-Signature=3f1c0a9b8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d"
	authHeader = "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=3f1c0a9b8e7d6c5b4a39281706f5e4d3"
	secret     = "component-secret-123"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, gone, kept string }{
		{putURL, "Zm9vYmFyYmF6cXV4", "/upload/0123456789abcdef0123456789abcdef/a.jpg?e=1764057600&t=REDACTED"},
		{presigned, "3f1c0a9b", "X-Amz-Signature=REDACTED"},
		{strings.ToLower(presigned), "3f1c0a9b", "x-amz-signature=redacted"},
		{"x?X-Amz-Security-Token=FwoGZXIvYXdzE&y=1", "FwoGZXIvYXdzE", "&y=1"},
		{authHeader, "3f1c0a9b", "Signature=REDACTED"},
		{`Put "` + putURL + `": dial tcp: refused`, "Zm9vYmFyYmF6cXV4", `t=REDACTED": dial tcp`},
		{"count=5 format=json at=3", "", "count=5 format=json at=3"},
	} {
		got := String(c.in)
		if c.gone != "" && strings.Contains(got, c.gone) {
			t.Errorf("String(%q) = %q: still holds %q", c.in, got, c.gone)
		}
		if !strings.Contains(strings.ToLower(got), strings.ToLower(c.kept)) {
			t.Errorf("String(%q) = %q: lost %q", c.in, got, c.kept)
		}
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

// Every way a value reaches a log line is cleaned: the message, string,
// error and Stringer attributes, groups, WithAttrs, and the *log.Logger that
// serve gives http.Server as its ErrorLog.
func TestHandler(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		var h slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		if format == "json" {
			h = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		}
		log := slog.New(Handler(h, secret, "short", ""))
		u, _ := url.Parse(presigned)
		log.Info("uploading to "+putURL, "url", putURL, "err", fmt.Errorf("put: %w", errors.New("bad "+secret)),
			"u", u, "s", stringer{authHeader}, slog.Group("g", "inner", presigned, "n", 3), "b", []byte(secret))
		log.With("url", putURL).WithGroup("grp").Warn("x", "secret", secret)
		// net/http's error log: a panic value quoting a request URL
		slog.NewLogLogger(log.Handler(), slog.LevelWarn).Printf("http: panic serving 127.0.0.1:5555: bad request %s\n%s", putURL, "goroutine 1")
		out := buf.String()
		for _, leak := range []string{"Zm9vYmFyYmF6cXV4", "3f1c0a9b", secret} {
			if strings.Contains(out, leak) {
				t.Errorf("%s: %q leaked:\n%s", format, leak, out)
			}
		}
		if !strings.Contains(out, "/upload/0123456789abcdef0123456789abcdef/a.jpg") || !strings.Contains(out, "n=3") && !strings.Contains(out, `"n":3`) {
			t.Errorf("%s: redaction took more than credentials:\n%s", format, out)
		}
		if strings.Count(out, "\n") != 3 {
			t.Errorf("%s: want 3 lines:\n%s", format, out)
		}
	}
}

// Short secrets are not replaced: they would mangle ordinary words.
func TestShortSecretsKept(t *testing.T) {
	var buf bytes.Buffer
	slog.New(Handler(slog.NewTextHandler(&buf, nil), "info")).Info("info")
	if !strings.Contains(buf.String(), "level=INFO msg=info") {
		t.Errorf("%s", buf.String())
	}
}
