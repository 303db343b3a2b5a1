package xmpp

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/store/disk"
	"mediaslot/upload"
	"mediaslot/upload/slotstore/boltslots"
)

// realSlots is the upload service as serve builds it, on a temp dir.
func realSlots(t *testing.T) *upload.Service {
	t.Helper()
	return realSlotsWith(t, func(*upload.Policy) {})
}

// realSlotsWith is realSlots with a policy that change alters.
func realSlotsWith(t *testing.T, change func(*upload.Policy)) *upload.Service {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "m.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	t.Cleanup(func() { w.Close(); db.Close() })
	st, err := disk.New(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	policy := upload.Policy{MaxFileSize: 1 << 20, SlotLifetime: 5 * time.Minute, FileLifetime: 7 * 24 * time.Hour,
		AllowedDomains: []string{"example.net"}, DeniedJIDs: []string{"mallory@example.net"}}
	change(&policy)
	rs, err := boltslots.Open(db, w, boltslots.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := upload.New(upload.Options{
		Policy:  policy,
		Records: rs, Store: st, Key: []byte("0123456789abcdef0123456789abcdef"),
		PublicURL: "https://up.example.net", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestBadInputSlotIQ is the bad-input matrix of slot requests: each odd or
// hostile request, through the real upload policy, gets exactly this error
// (type/condition and, where XEP-0363 defines one, its child), and the
// component answers the next request as if nothing happened.
func TestBadInputSlotIQ(t *testing.T) {
	svc := realSlots(t)
	req := func(attrs, inner string) string {
		if inner == "" {
			return `<iq type='get' id='x' ` + from + `><request xmlns='urn:xmpp:http:upload:0' ` + attrs + `/></iq>`
		}
		return `<iq type='get' id='x' ` + from + `><request xmlns='urn:xmpp:http:upload:0' ` + attrs + `>` + inner + `</request></iq>`
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	cases := []struct{ name, in, want string }{
		{"empty filename", req(`filename='' size='5'`, ""), "modify/bad-request"},
		{"no filename", req(`size='5'`, ""), "modify/bad-request"},
		{"slash", req(`filename='a/b.txt' size='5'`, ""), "modify/bad-request"},
		{"backslash", req(`filename='a\b.txt' size='5'`, ""), "modify/bad-request"},
		{"dotdot", req(`filename='..' size='5'`, ""), "modify/bad-request"},
		{"dot", req(`filename='.' size='5'`, ""), "modify/bad-request"},
		{"traversal", req(`filename='../../etc/passwd' size='5'`, ""), "modify/bad-request"},
		{"256 bytes", req(`filename='`+strings.Repeat("a", 256)+`' size='5'`, ""), "modify/bad-request"},
		{"huge attribute", req(`filename='`+strings.Repeat("é", 20000)+`' size='5'`, ""), "modify/bad-request"},
		{"tab", req(`filename='a&#9;b' size='5'`, ""), "modify/bad-request"},
		{"newline", req(`filename='a&#10;b' size='5'`, ""), "modify/bad-request"},
		{"DEL", req(`filename='a&#127;b' size='5'`, ""), "modify/bad-request"},
		{"C1 control", req(`filename='a&#133;b' size='5'`, ""), "modify/bad-request"},
		{"no size", req(`filename='a.txt'`, ""), "modify/bad-request"},
		{"empty size", req(`filename='a.txt' size=''`, ""), "modify/bad-request"},
		{"zero size", req(`filename='a.txt' size='0'`, ""), "modify/bad-request"},
		{"negative size", req(`filename='a.txt' size='-5'`, ""), "modify/bad-request"},
		{"text size", req(`filename='a.txt' size='five'`, ""), "modify/bad-request"},
		{"fraction", req(`filename='a.txt' size='1.5'`, ""), "modify/bad-request"},
		{"spaced size", req(`filename='a.txt' size=' 5'`, ""), "modify/bad-request"},
		{"hex size", req(`filename='a.txt' size='0x10'`, ""), "modify/bad-request"},
		{"over max", req(`filename='a.txt' size='1048577'`, ""), "modify/not-acceptable file-too-large 1048576"},
		{"over int64", req(`filename='a.txt' size='99999999999999999999999'`, ""), "modify/not-acceptable file-too-large 1048576"},
		{"bad content-type", req(`filename='a.txt' size='5' content-type='not a type'`, ""), "modify/bad-request"},
		{"repeated attribute", req(`filename='a.txt' filename='b.txt' size='5'`, ""), "modify/bad-request"},
		{"unknown purpose", req(`filename='a.txt' size='5'`, `<archive xmlns='urn:xmpp:http:upload:purpose:0'/>`), "cancel/feature-not-implemented"},
		{"two purposes", req(`filename='a.txt' size='5'`, `<message xmlns='urn:xmpp:http:upload:purpose:0'/><profile xmlns='urn:xmpp:http:upload:purpose:0'/>`), "modify/bad-request"},
		{"bad stamp", req(`filename='a.txt' size='5'`, `<ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='soon'/>`), "modify/bad-request"},
		{"stamp in the past", req(`filename='a.txt' size='5'`, `<ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='`+past+`'/>`), "modify/bad-request"},
		{"foreign domain", strings.Replace(req(`filename='a.txt' size='5'`, ""), "alice@example.net", "eve@evil.example", 1), "auth/forbidden"},
		{"denied user", strings.Replace(req(`filename='a.txt' size='5'`, ""), "alice@example.net", "mallory@example.net", 1), "auth/forbidden"},
		{"set", strings.Replace(req(`filename='a.txt' size='5'`, ""), "type='get'", "type='set'", 1), "modify/bad-request"},
		{"legacy without size", `<iq type='get' id='x' ` + from + `><request xmlns='urn:xmpp:http:upload'><filename>a</filename></request></iq>`, "modify/bad-request"},
		{"other namespace", `<iq type='get' id='x' ` + from + `><request xmlns='urn:example:upload' filename='a' size='5'/></iq>`, "cancel/service-unavailable"},
		{"no payload", `<iq type='get' id='x' ` + from + `/>`, "modify/bad-request"},
		{"disco node", `<iq type='get' id='x' ` + from + `><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>`, "cancel/item-not-found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := roundTrip(t, svc, c.in)
			parts := strings.Fields(c.want)
			typ, cond, _ := strings.Cut(parts[0], "/")
			if !strings.Contains(got, `type="error"`) || !strings.Contains(got, `<error type="`+typ+`"><`+cond+` `) {
				t.Fatalf("want %s, got %s", c.want, got)
			}
			if len(parts) == 3 && !strings.Contains(got, "<"+parts[1]+` xmlns="urn:xmpp:http:upload:0"><max-file-size>`+parts[2]+"</max-file-size>") {
				t.Fatalf("want <%s> with max %s, got %s", parts[1], parts[2], got)
			}
			if !strings.Contains(got, "<text ") && cond != "service-unavailable" {
				t.Fatalf("no text for the user: %s", got)
			}
		})
	}
	// and a good request still works
	if got := roundTrip(t, svc, req(`filename='fine é.txt' size='5' content-type='text/plain'`, "")); !strings.Contains(got, `type="result"`) || !strings.Contains(got, "fine%20%C3%A9.txt") {
		t.Fatalf("good request after the matrix: %s", got)
	}
}
