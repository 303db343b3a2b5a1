package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/upload"
)

// events is an Observer that writes down what it is told.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf(format, a...))
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.got, " ")
}

func (e *events) LinkChanged(up bool)                 { e.add("link:%v", up) }
func (e *events) SlotIssued()                         { e.add("issued") }
func (e *events) SlotRefused(reason string)           { e.add("refused:%s", reason) }
func (e *events) RelayAccepted(delivered, queued int) { e.add("relay:%d/%d", delivered, queued) }
func (e *events) RelayDrained(n int)                  { e.add("drained:%d", n) }
func (e *events) RelayRefused(condition string)       { e.add("relay-refused:%s", condition) }

// failingSlots fails every request the way a broken database would.
type failingSlots struct{ fakeSlots }

func (failingSlots) Issue(context.Context, upload.Request) (upload.Slot, error) {
	return upload.Slot{}, errors.New("disk on fire")
}

// Slot requests tell the observer whether they were granted, and why not:
// refusals of the upload service by reason, unparsable requests as
// bad_request, failures as internal.
func TestObserverSlots(t *testing.T) {
	ev := &events{}
	h := newHandler("upload.example.net", "test", fakeSlots{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.obs = ev
	replies := make(chan struct{}, 8)
	send := func(context.Context, []byte, sendMode) error { replies <- struct{}{}; return nil }
	ask := func(h *handler, attrs string) {
		t.Helper()
		in := `<iq type="get" id="x" from="alice@example.net/phone" to="upload.example.net"><request xmlns="urn:xmpp:http:upload:0" ` + attrs + `/></iq>`
		d := xml.NewDecoder(strings.NewReader(in))
		tok, _ := d.Token()
		st, err := readStanza(d, tok.(xml.StartElement))
		if err != nil {
			t.Fatal(err)
		}
		h.handle(context.Background(), st, send)
		select {
		case <-replies:
		case <-time.After(time.Second):
			t.Fatal("no reply")
		}
	}
	ask(h, `filename="a.jpg" size="10"`)
	ask(h, `filename="big.mp4" size="10"`)
	ask(h, `filename="quota.txt" size="10"`)
	ask(h, `filename="a.jpg"`) // no size
	broken := newHandler("upload.example.net", "test", failingSlots{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	broken.obs = ev
	ask(broken, `filename="a.jpg" size="10"`)
	if got, want := ev.String(), "issued refused:too_large refused:quota refused:bad_request refused:internal"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	// a handler made without an observer tells nobody and does not fail
	ask(newHandler("upload.example.net", "test", fakeSlots{}, slog.New(slog.NewTextHandler(io.Discard, nil))), `filename="a.jpg" size="10"`)
}
