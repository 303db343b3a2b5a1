package relay

import (
	"strings"
	"testing"

	"mediaslot/offline"
)

// Every XEP-0231 <data/> is checked, wherever it is: a client shows a
// nested one (in a forwarded message, in an address) as well.
func TestRelayChecksNestedBoB(t *testing.T) {
	bad := `<data xmlns='urn:xmpp:bob' cid='sha1+0000000000000000000000000000000000000000@bob.xmpp.org' type='image/png'>` +
		`aGVsbG8=</data>`
	for name, payload := range map[string]string{
		"in forwarded": `<body>x</body><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>y</body>` + bad + `</message></forwarded>`,
		"in extension": `<body>x</body><wrap xmlns='urn:example:wrap'><deep>` + bad + `</deep></wrap>`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newRelayFixture(t, offline.Limits{})
			f.in(t, privAd)
			f.in(t, relayMsg("n", payload, "to:bob@example.net"))
			if got := f.next(t); !strings.Contains(got, `type="error"`) || !strings.Contains(got, "<not-acceptable ") {
				t.Fatalf("want not-acceptable for a nested bad cid, got %s", got)
			}
			f.quiet(t)
			if f.q.Pending("bob@example.net") {
				t.Fatal("queued a message with a bad nested <data/>")
			}
		})
	}
	big := `<body>x</body><wrap xmlns='urn:example:wrap'>` + bob(make([]byte, 9000)) + `</wrap>`
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, relayMsg("n", big, "to:bob@example.net"))
	if got := f.next(t); !strings.Contains(got, "<policy-violation ") {
		t.Fatalf("want policy-violation for a big nested <data/>, got %s", got)
	}
}

// A sender cannot date its message: its XEP-0203 (or XEP-0091) delay is
// dropped, and a queued message carries only the relay's.
func TestRelayStripsSenderDelay(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	forged := `<body>old news</body><delay xmlns='urn:xmpp:delay' from='example.net' stamp='2001-01-01T00:00:00Z'/><x xmlns='jabber:x:delay' stamp='20010101T00:00:00'/>`
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	f.in(t, relayMsg("d", forged, "to:bob@example.net", "to:carol@example.net"))
	live := f.next(t)
	if strings.Contains(live, "2001") || strings.Contains(live, "delay") {
		t.Errorf("live delivery carries the sender's delay: %s", live)
	}
	waitQueue(t, f.q, "carol@example.net", true)
	f.in(t, `<presence from='carol@example.net/phone' to='upload.example.net'/>`)
	queued := f.next(t)
	if strings.Contains(queued, "2001") || strings.Count(queued, "<delay") != 1 || !strings.Contains(queued, `<delay xmlns="urn:xmpp:delay" from="upload.example.net"`) {
		t.Errorf("queued delivery must carry the relay's delay only: %s", queued)
	}
}

// XEP-0033: replyto, replyroom and noreply go to the recipients as the
// sender wrote them; an ofrom from the sender does not (only the relay
// names the sender).
func TestRelayPassesReplyAddresses(t *testing.T) {
	for _, privileged := range []bool{true, false} {
		f := newRelayFixture(t, offline.Limits{})
		if privileged {
			f.in(t, privAd)
			f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
		}
		msg := strings.Replace(relayMsg("r", `<body>hi</body>`, "to:bob@example.net", "bcc:dave@example.net"), `</addresses>`,
			`<address type='replyto' jid='team@example.net' desc='Team'/><address type='replyroom' jid='room@muc.example.net'/><address type='noreply'/>`+
				`<address type='ofrom' jid='ceo@example.net'/></addresses>`, 1)
		f.in(t, msg)
		got := f.next(t)
		for _, want := range []string{`<address type="replyto" jid="team@example.net" desc="Team">`, `<address type="replyroom" jid="room@muc.example.net">`, `<address type="noreply">`} {
			if !strings.Contains(got, want) {
				t.Errorf("privileged %v: lacks %s:\n%s", privileged, want, got)
			}
		}
		if strings.Contains(got, "ceo@") || strings.Contains(got, "dave@") {
			t.Errorf("privileged %v: a sender's ofrom or a bcc reached the recipient:\n%s", privileged, got)
		}
	}
}
