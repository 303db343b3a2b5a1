package httpupload

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"mediaslot/refusal"
	"mediaslot/upload"
	"mediaslot/xmpp/wire"
)

// events is an Observer that writes down what it is told.
type events struct{ got []string }

func (e *events) add(format string, a ...any) { e.got = append(e.got, fmt.Sprintf(format, a...)) }
func (e *events) SlotIssued()                 { e.add("issued") }
func (e *events) SlotRefused(reason string)   { e.add("refused:%s", reason) }

// testSlots refuses big.mp4 and quota.txt as the upload service would,
// issues the rest, or fails every request the way a broken database would.
type testSlots struct{ broken bool }

func (testSlots) MaxFileSize() int64 { return 100 }

func (s testSlots) Issue(_ context.Context, r upload.Request) (upload.Slot, error) {
	switch {
	case s.broken:
		return upload.Slot{}, errors.New("disk on fire")
	case r.Filename == "big.mp4":
		return upload.Slot{}, &refusal.Error{Kind: refusal.TooLarge, Text: "too large", MaxSize: 100}
	case r.Filename == "quota.txt":
		return upload.Slot{}, refusal.New(refusal.OverQuota, "over quota")
	}
	return upload.Slot{ID: "0123", PutURL: "https://up.example.net/upload/0123/a.jpg", GetURL: "https://up.example.net/file/0123/a.jpg"}, nil
}

// Slot requests tell the observer whether they were granted, and why not:
// refusals of the upload service by reason, unparsable requests as
// bad_request, failures as internal.
func TestObserverSlots(t *testing.T) {
	ev := &events{}
	log := slog.New(slog.DiscardHandler)
	ask := func(h *Handler, attrs string) {
		t.Helper()
		in := `<iq type="get" id="x" from="alice@example.net/phone" to="upload.example.net"><request xmlns="urn:xmpp:http:upload:0" ` + attrs + `/></iq>`
		d := xml.NewDecoder(strings.NewReader(in))
		tok, _ := d.Token()
		st, err := wire.Read(d, tok.(xml.StartElement))
		if err != nil {
			t.Fatal(err)
		}
		replies := 0
		send := func(context.Context, []byte, wire.SendMode) error { replies++; return nil }
		if !h.Handle(context.Background(), st, send) || replies != 1 {
			t.Fatalf("%s: handled with %d replies, want 1", attrs, replies)
		}
	}
	h := New("upload.example.net", testSlots{}, 0, log, ev)
	ask(h, `filename="a.jpg" size="10"`)
	ask(h, `filename="big.mp4" size="10"`)
	ask(h, `filename="quota.txt" size="10"`)
	ask(h, `filename="a.jpg"`) // no size
	ask(New("upload.example.net", testSlots{broken: true}, 0, log, ev), `filename="a.jpg" size="10"`)
	if got, want := strings.Join(ev.got, " "), "issued refused:too_large refused:quota refused:bad_request refused:internal"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	// a handler made without an observer tells nobody and does not fail
	ask(New("upload.example.net", testSlots{}, 0, log, nil), `filename="a.jpg" size="10"`)
}
