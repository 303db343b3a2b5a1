package xmpp

import (
	"context"
	"encoding/xml"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediaslot/refusal"
	"mediaslot/upload"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fakeSlots answers by filename, so each golden case picks its outcome.
type fakeSlots struct{ got chan upload.Request }

func (f fakeSlots) MaxFileSize() int64 { return 104857600 }

func (f fakeSlots) Issue(_ context.Context, r upload.Request) (upload.Slot, error) {
	if f.got != nil {
		f.got <- r
	}
	switch r.Filename {
	case "big.mp4":
		return upload.Slot{}, &refusal.Error{Kind: refusal.TooLarge, Text: "File too large. Maximum is 104857600 bytes", MaxSize: 104857600}
	case "forbidden.txt":
		return upload.Slot{}, &refusal.Error{Kind: refusal.Forbidden, Text: "Uploads are limited to accounts on example.net"}
	case "":
		return upload.Slot{}, &refusal.Error{Kind: refusal.BadRequest, Text: "The filename is missing or empty"}
	case "panic.txt":
		panic("boom")
	case "quota.txt":
		return upload.Slot{}, &refusal.Error{Kind: refusal.OverQuota, Text: "Daily upload quota of 1.0 GiB reached",
			RetryAt: time.Date(2026, 9, 1, 8, 15, 0, 0, time.UTC)}
	}
	if r.Purpose != "" && r.Purpose != upload.PurposeEphemeral {
		return upload.Slot{}, &refusal.Error{Kind: refusal.Unsupported, Text: "The upload purpose \"" + string(r.Purpose) + "\" is not supported"}
	}
	return upload.Slot{
		ID:     "0123456789abcdef0123456789abcdef",
		PutURL: "https://up.example.net/upload/0123456789abcdef0123456789abcdef/" + strings.ReplaceAll(r.Filename, " ", "%20") + "?e=1&t=x",
		GetURL: "https://up.example.net/file/0123456789abcdef0123456789abcdef/" + strings.ReplaceAll(r.Filename, " ", "%20"),
	}, nil
}

// parseStanza reads the first stanza of in (after a stream header, if in
// starts with one), as the read loop does.
func parseStanza(t *testing.T, in string) stanza {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(in))
	tok, err := d.Token()
	if start, ok := tok.(xml.StartElement); ok && start.Name.Local == "stream" {
		tok, err = d.Token()
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := readStanza(d, tok.(xml.StartElement))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// roundTrip feeds one stanza to a handler and returns its reply as XML, or
// "" if it sent none within a short wait.
func roundTrip(t *testing.T, slots Slots, in string) string {
	t.Helper()
	st := parseStanza(t, in)
	replies := make(chan string, 2)
	send := func(_ context.Context, stanza []byte, _ sendMode) error {
		replies <- string(stanza)
		return nil
	}
	h := newHandler("upload.example.net", "test", slots, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.handle(context.Background(), st, send)
	select {
	case r := <-replies:
		return r
	case <-time.After(200 * time.Millisecond):
		return ""
	}
}

const from = `from='alice@example.net/phone' to='upload.example.net'`

// Golden cases: every reply a client can get, byte for byte.
var golden = []struct{ name, in string }{
	{"disco_info", `<iq type='get' id='d1' ` + from + `><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`},
	{"disco_info_node", `<iq type='get' id='d2' ` + from + `><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>`},
	{"disco_items", `<iq type='get' id='d3' ` + from + `><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`},
	{"ping", `<iq type='get' id='p1' ` + from + `><ping xmlns='urn:xmpp:ping'/></iq>`},
	{"version", `<iq type='get' id='v1' ` + from + `><query xmlns='jabber:iq:version'/></iq>`},
	{"slot", `<iq type='get' id='s1' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='photo été.jpg' size='48213' content-type='image/jpeg'/></iq>`},
	{"slot_legacy", `<iq type='get' id='s2' ` + from + `><request xmlns='urn:xmpp:http:upload'><filename>a.txt</filename><size>5</size><content-type>text/plain</content-type></request></iq>`},
	{"too_large", `<iq type='get' id='s3' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='big.mp4' size='734003200' content-type='video/mp4'/></iq>`},
	{"too_large_legacy", `<iq type='get' id='s4' ` + from + `><request xmlns='urn:xmpp:http:upload'><filename>big.mp4</filename><size>734003200</size></request></iq>`},
	{"forbidden", `<iq type='get' id='s5' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='forbidden.txt' size='5'/></iq>`},
	{"empty_filename", `<iq type='get' id='s6' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='' size='5'/></iq>`},
	{"missing_size", `<iq type='get' id='s7' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='a.txt'/></iq>`},
	{"nonnumeric_size", `<iq type='get' id='s8' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='12kB'/></iq>`},
	{"set", `<iq type='set' id='s9' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'/></iq>`},
	{"panic", `<iq type='get' id='s10' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='panic.txt' size='5'/></iq>`},
	{"quota", `<iq type='get' id='q1' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='quota.txt' size='5'/></iq>`},
	{"purpose_unknown", `<iq type='get' id='q2' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'><archive xmlns='urn:xmpp:http:upload:purpose:0'/></request></iq>`},
	{"purpose_two", `<iq type='get' id='q3' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'><message xmlns='urn:xmpp:http:upload:purpose:0'/><permanent xmlns='urn:xmpp:http:upload:purpose:0'/></request></iq>`},
	{"purpose_bad_stamp", `<iq type='get' id='q4' ` + from + `><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'><ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='tomorrow'/></request></iq>`},
	{"unknown", `<iq type='get' id='u1' ` + from + `><query xmlns='jabber:iq:roster'/></iq>`},
	{"no_payload", `<iq type='get' id='u2' ` + from + `/>`},
}

func TestGolden(t *testing.T) {
	for _, c := range golden {
		t.Run(c.name, func(t *testing.T) {
			got := roundTrip(t, fakeSlots{}, c.in)
			path := filepath.Join("testdata", c.name+".xml")
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got+"\n" != string(want) {
				t.Errorf("reply to %s\n got: %s\nwant: %s", c.in, got, want)
			}
		})
	}
}

// No reply to results and errors, nor to messages and presence.
func TestNoReply(t *testing.T) {
	for _, in := range []string{
		`<iq type='result' id='r1' ` + from + `/>`,
		`<iq type='error' id='r2' ` + from + `><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		`<message ` + from + `><body>hi</body></message>`,
		`<presence ` + from + `/>`,
	} {
		if got := roundTrip(t, fakeSlots{}, in); got != "" {
			t.Errorf("reply to %s: %s", in, got)
		}
	}
}

// The handler hands the upload service what the client asked, with the
// requester's bare JID and domain; oversized numbers become a too-large request.
func TestRequestReachesService(t *testing.T) {
	got := make(chan upload.Request, 1)
	roundTrip(t, fakeSlots{got: got}, `<iq type='get' id='s1' from='Alice@Example.NET/phone' to='upload.example.net'><request xmlns='urn:xmpp:http:upload:0' filename='a b.txt' size='99999999999999999999999' content-type=' text/plain '/></iq>`)
	r := <-got
	want := upload.Request{Owner: "alice@example.net", Domain: "example.net", Filename: "a b.txt", Size: math.MaxInt64, ContentType: "text/plain"}
	if r != want {
		t.Fatalf("request %+v, want %+v", r, want)
	}
	roundTrip(t, fakeSlots{got: got}, `<iq type='get' id='s2' `+from+`><request xmlns='urn:xmpp:http:upload:0' filename='e.txt' size='5'><ephemeral xmlns='urn:xmpp:http:upload:purpose:0' expire-before='2026-12-01T12:00:00Z'/></request></iq>`)
	r = <-got
	if r.Purpose != upload.PurposeEphemeral || !r.ExpireBefore.Equal(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("purpose not parsed: %+v", r)
	}
}
