package httpupload

import (
	"context"
	"encoding/xml"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mediaslot/upload"
	"mediaslot/xmpp/wire"
)

// slowSlots is a database that answers only when told to.
type slowSlots struct {
	entered chan struct{}
	answer  chan struct{}
}

func (slowSlots) MaxFileSize() int64 { return 100 }

func (s slowSlots) Issue(ctx context.Context, r upload.Request) (upload.Slot, error) {
	s.entered <- struct{}{}
	select {
	case <-s.answer:
		return upload.Slot{ID: "0123", PutURL: "https://up.example.net/upload/0123/a.jpg", GetURL: "https://up.example.net/file/0123/a.jpg"}, nil
	case <-ctx.Done():
		return upload.Slot{}, ctx.Err()
	}
}

// With workers, a slot request whose Issue waits for the database does not
// hold up the read loop (Handle returns at once), and a request finding
// every worker busy is refused at once with wait/service-unavailable
// rather than queued without bound; the waiting one is answered when the
// database answers.
func TestSlowRecordsDoNotStallTheReadLoop(t *testing.T) {
	slots := slowSlots{entered: make(chan struct{}, 2), answer: make(chan struct{})}
	h := New("upload.example.net", slots, 1, slog.New(slog.DiscardHandler), nil)
	replies := make(chan string, 2)
	send := func(_ context.Context, b []byte, _ wire.SendMode) error { replies <- string(b); return nil }
	ask := func(id string) {
		t.Helper()
		in := `<iq type="get" id="` + id + `" from="alice@example.net/phone" to="upload.example.net"><request xmlns="urn:xmpp:http:upload:0" filename="a.jpg" size="10"/></iq>`
		d := xml.NewDecoder(strings.NewReader(in))
		tok, _ := d.Token()
		st, err := wire.Read(d, tok.(xml.StartElement))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan bool)
		go func() { done <- h.Handle(context.Background(), st, send) }()
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("slot request not handled")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Handle waited for the database")
		}
	}
	ask("first")
	<-slots.entered // the first is with the database
	ask("second")
	if got := <-replies; !strings.Contains(got, `id="second"`) || !strings.Contains(got, "<service-unavailable") || !strings.Contains(got, `type="wait"`) {
		t.Fatalf("second request with every worker busy: %s", got)
	}
	close(slots.answer)
	if got := <-replies; !strings.Contains(got, `id="first"`) || !strings.Contains(got, "<slot") {
		t.Fatalf("first request: %s", got)
	}
}
