package httpupload

import (
	"context"
	"encoding/xml"
	"log/slog"
	"testing"

	"mediaslot/upload"
	"mediaslot/xmpp/wire"
)

// TestSlotReplyMatchesMarshal checks the hand-written slot reply against
// encoding/xml's encoding of the same reply, escaping included.
func TestSlotReplyMatchesMarshal(t *testing.T) {
	type slotURL struct {
		URL string `xml:"url,attr"`
	}
	type slotResult struct {
		XMLName xml.Name `xml:"urn:xmpp:http:upload:0 slot"`
		Put     slotURL  `xml:"put"`
		Get     slotURL  `xml:"get"`
	}
	type legacySlotResult struct {
		XMLName xml.Name `xml:"urn:xmpp:http:upload slot"`
		Put     string   `xml:"put"`
		Get     string   `xml:"get"`
	}
	for _, slot := range []upload.Slot{
		{PutURL: "https://up.example.net/upload/0123/a.jpg?e=1&t=x", GetURL: "https://up.example.net/file/0123/a.jpg"},
		{PutURL: `https://up.example.net/upload/0123/a&b "c" <d>'e'.jpg?e=1&t=x`, GetURL: "&"},
		{PutURL: "tab\tnewline\ncr\rend&", GetURL: "https://up.example.net/file/0123/ünïcode%20name.jpg\x00\xff"},
	} {
		for _, reply := range []wire.IQ{
			{ID: "a7d8f3c2", From: "upload.example.net", To: "alice@example.net/phone"},
			{ID: `id&"<>'`, From: "upload.example.net", To: "alice@example.net/ré"},
		} {
			reply.Type = "result"
			for ns, want := range map[string]any{
				NS:       slotResult{Put: slotURL{slot.PutURL}, Get: slotURL{slot.GetURL}},
				nsLegacy: legacySlotResult{Put: slot.PutURL, Get: slot.GetURL},
			} {
				r := reply
				r.Payload = want
				ref, err := xml.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				send := func(_ context.Context, b []byte, _ wire.SendMode) error { got = b; return nil }
				wire.Answer(context.Background(), send, slog.New(slog.DiscardHandler), reply, slotPayload(ns, slot), nil)
				if string(got) != string(ref) {
					t.Errorf("%s:\n got %s\nwant %s", ns, got, ref)
				}
			}
		}
	}
}
