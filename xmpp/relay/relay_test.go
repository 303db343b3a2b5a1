package relay

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"mediaslot/internal/thumbnail"
	"mediaslot/offline"
	"mediaslot/offline/offlinetest"
	"mediaslot/testserver"
	"mediaslot/upload"
	"mediaslot/xmpp/wire"
)

// relayFixture is the relay on a real bbolt queue; what it sends arrives
// on out.
type relayFixture struct {
	r   *Relay
	q   offline.Queue
	log *slog.Logger
	out chan string
}

// testPolicy is the relay policy of the fixtures.
var testPolicy = Policy{
	SenderDomains: []string{"example.net"}, RecipientDomains: []string{"example.net"},
	MaxStanzaBytes: 64 << 10, MaxBoBBytes: 8 << 10, MaxRecipients: 4,
}

func newRelayFixture(t *testing.T, limits offline.Limits) *relayFixture {
	t.Helper()
	q := offlinetest.New(t, limits)
	log := slog.New(slog.DiscardHandler)
	return &relayFixture{r: New("upload.example.net", testPolicy, q, nil, nil, log, nil), q: q, log: log, out: make(chan string, 64)}
}

// in feeds a stanza as it arrives on a component stream: in the stream's
// namespace.
func (f *relayFixture) in(t *testing.T, x string) {
	t.Helper()
	f.inVia(t, x, func(_ context.Context, stanza []byte, _ wire.SendMode) error {
		f.out <- string(stanza)
		return nil
	})
}

// inVia feeds a stanza whose replies and deliveries go to send. An IQ
// request the relay does not take is answered with a result at once, as
// the link answers pings (and a slot handler slot requests).
func (f *relayFixture) inVia(t *testing.T, x string, send wire.Sender) {
	t.Helper()
	st, err := wire.Parse(`<stream xmlns='jabber:component:accept'>` + x)
	if err != nil {
		t.Fatal(err)
	}
	if !f.r.Handle(context.Background(), st, send) && st.Start.Name.Local == "iq" && st.Attr("type") == "get" {
		wire.Answer(context.Background(), send, f.log, wire.Reply(st, "upload.example.net"), nil, nil)
	}
}

func (f *relayFixture) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-f.out:
		return s
	case <-time.After(3 * time.Second):
		t.Fatal("nothing sent within 3 s")
		return ""
	}
}

func (f *relayFixture) quiet(t *testing.T) {
	t.Helper()
	select {
	case s := <-f.out:
		t.Fatalf("unexpected stanza: %s", s)
	case <-time.After(150 * time.Millisecond):
	}
}

const privAd = `<message from='example.net' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:2'><perm access='message' type='outgoing'/><perm access='presence' type='managed_entity'/></privilege></message>`

func bob(thumb []byte) string {
	sum := sha1.Sum(thumb)
	cid := "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"
	return `<body>https://up.example.net/file/x/cat.jpg</body>` +
		`<x xmlns='jabber:x:oob'><url>https://up.example.net/file/x/cat.jpg</url></x>` +
		`<file-sharing xmlns='urn:xmpp:sfs:0' disposition='inline'><file xmlns='urn:xmpp:file:metadata:0'><media-type>image/jpeg</media-type><name>cat.jpg</name><size>1234</size>` +
		`<thumbnail xmlns='urn:xmpp:thumbs:1' uri='cid:` + cid + `' media-type='image/png' width='8' height='8'/></file>` +
		`<sources><url-data xmlns='http://jabber.org/protocol/url-data' target='https://up.example.net/file/x/cat.jpg'/></sources></file-sharing>` +
		`<data xmlns='urn:xmpp:bob' cid='` + cid + `' type='image/png' max-age='86400'>` + base64.StdEncoding.EncodeToString(thumb) + `</data>` +
		`<unknown xmlns='urn:example:ext' a='1'><deep>ü &amp; more</deep></unknown>`
}

func relayMsg(id, payload string, to ...string) string {
	var a strings.Builder
	for _, j := range to {
		typ, addr, _ := strings.Cut(j, ":")
		a.WriteString(`<address type='` + typ + `' jid='` + addr + `'/>`)
	}
	return `<message type='chat' id='` + id + `' from='alice@example.net/phone' to='upload.example.net'>` + payload +
		`<addresses xmlns='http://jabber.org/protocol/address'>` + a.String() + `</addresses></message>`
}

// payloadOf returns the canonical form of a delivered message's payload
// (its children but addresses and delay), for comparison with what was sent.
func payloadOf(t *testing.T, msg string) string {
	t.Helper()
	inner := msg[strings.LastIndex(msg, "<message"):] // the forwarded message, if any
	st, err := wire.Parse(inner)
	if err != nil {
		t.Fatal(err)
	}
	var keep []xml.Token
	for _, c := range st.Children() {
		if c.Start.Name.Space != nsAddress && c.Start.Name.Space != stanza.NSDelay {
			keep = append(keep, c.Tokens...)
		}
	}
	b, err := encoded(keep, st.Start.Name.Space)
	if err != nil {
		t.Fatal(err)
	}
	return canonical(t, `<message xmlns="jabber:client">`+string(b)+`</message>`)
}

func TestRelayOnlineAndOffline(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	thumb := []byte("\x89PNG fake thumbnail bytes")
	f.in(t, relayMsg("m1", bob(thumb), "to:bob@example.net", "cc:carol@example.net", "bcc:dave@example.net"))

	// bob is online: at once, forwarded as from alice, no delay
	got := f.next(t)
	for _, want := range []string{`<privilege xmlns="urn:xmpp:privilege:2">`, `<forwarded xmlns="urn:xmpp:forward:0">`,
		`<message xmlns="jabber:client" type="chat" id="m1" from="alice@example.net" to="bob@example.net">`,
		`<address type="to" jid="bob@example.net" delivered="true"/>`, `<address type="cc" jid="carol@example.net" delivered="true"/>`} {
		if !strings.Contains(got, want) {
			t.Errorf("online delivery lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "dave@") || strings.Contains(got, "urn:xmpp:delay") {
		t.Errorf("bcc leaked or delay on live delivery:\n%s", got)
	}
	want := canonical(t, `<message xmlns="jabber:client">`+bob(thumb)+`</message>`)
	if p := payloadOf(t, got); p != want {
		t.Errorf("payload changed:\n got %s\nwant %s", p, want)
	}
	f.quiet(t)
	if !f.q.Pending("carol@example.net") || !f.q.Pending("dave@example.net") {
		t.Fatal("offline recipients not queued")
	}

	// carol comes online: her copy arrives, delayed
	f.in(t, `<presence from='carol@example.net/phone' to='upload.example.net'/>`)
	got = f.next(t)
	if !strings.Contains(got, `to="carol@example.net"`) || !strings.Contains(got, `<delay xmlns="urn:xmpp:delay" from="upload.example.net" stamp="`) {
		t.Errorf("queued delivery: %s", got)
	}
	if p := payloadOf(t, got); p != want {
		t.Errorf("queued payload changed:\n got %s\nwant %s", p, want)
	}
	waitQueue(t, f.q, "carol@example.net", false)
}

func waitQueue(t *testing.T, q offline.Queue, who string, pending bool) {
	t.Helper()
	testserver.WaitFor(t, 10*time.Second, fmt.Sprintf("Pending(%s) = %v", who, pending), func() bool { return q.Pending(who) == pending })
}

// Without the message privilege the component sends as itself and names the
// sender with an ofrom address; without the presence privilege it cannot
// know who is online and hands everything to the server at once.
func TestRelayWithoutPrivileges(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, relayMsg("m2", `<body>hi</body>`, "to:bob@example.net"))
	got := f.next(t)
	for _, want := range []string{`<message type="chat" id="m2" from="upload.example.net" to="bob@example.net">`, `<address type="ofrom" jid="alice@example.net/phone"/>`} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %s:\n%s", want, got)
		}
	}
	if f.q.Pending("bob@example.net") {
		t.Error("queued although delivered")
	}
}

// Order per recipient holds: while older messages wait, new ones queue behind them.
func TestRelayKeepsOrder(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.in(t, privAd)
	for _, id := range []string{"a", "b", "c"} {
		f.in(t, relayMsg(id, `<body>`+id+`</body>`, "to:bob@example.net"))
	}
	waitQueue(t, f.q, "bob@example.net", true)
	time.Sleep(100 * time.Millisecond) // all three accepted
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	f.in(t, relayMsg("d", `<body>d</body>`, "to:bob@example.net"))
	var ids []string
	for range 4 {
		got := f.next(t)
		_, rest, _ := strings.Cut(got, `id="`)
		id, _, _ := strings.Cut(rest, `"`)
		ids = append(ids, id)
	}
	if strings.Join(ids, "") != "abcd" {
		t.Fatalf("delivered in order %v", ids)
	}
}

func TestRelayRefusals(t *testing.T) {
	thumb := []byte("thumb")
	big := make([]byte, 9000)
	cases := []struct{ name, in, cond string }{
		{"foreign sender", strings.Replace(relayMsg("r", `<body/>`, "to:bob@example.net"), "alice@example.net", "mallory@evil.org", 1), "forbidden"},
		{"foreign recipient", relayMsg("r", `<body/>`, "to:bob@evil.org"), "forbidden"},
		{"no recipient", relayMsg("r", `<body/>`), "bad-request"},
		{"not a user", relayMsg("r", `<body/>`, "to:example.net"), "bad-request"},
		{"too many", relayMsg("r", `<body/>`, "to:a@example.net", "to:b@example.net", "to:c@example.net", "to:d@example.net", "to:e@example.net"), "policy-violation"},
		{"bad cid", relayMsg("r", strings.Replace(bob(thumb), "sha1+", "sha1+00", 2), "to:bob@example.net"), "not-acceptable"},
		{"bad base64", relayMsg("r", `<data xmlns='urn:xmpp:bob' cid='x'>!!!</data>`, "to:bob@example.net"), "not-acceptable"},
		{"big bob", relayMsg("r", bob(big), "to:bob@example.net"), "policy-violation"},
		{"bob one byte over", relayMsg("r", bob(make([]byte, 8<<10+1)), "to:bob@example.net"), "policy-violation"},
		{"huge stanza", relayMsg("r", `<body>`+strings.Repeat("x", 70<<10)+`</body>`, "to:bob@example.net"), "policy-violation"},
		{"groupchat", strings.Replace(relayMsg("r", `<body/>`, "to:bob@example.net"), "type='chat'", "type='groupchat'", 1), "bad-request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newRelayFixture(t, offline.Limits{})
			f.in(t, privAd)
			f.in(t, c.in)
			got := f.next(t)
			if !strings.Contains(got, `type="error"`) || !strings.Contains(got, "<"+c.cond+" ") || !strings.Contains(got, `to="`) || !strings.Contains(got, "<text ") {
				t.Fatalf("want an error message with %s and a text, got %s", c.cond, got)
			}
			f.quiet(t)
			for _, who := range []string{"bob@example.net", "a@example.net", "e@example.net"} {
				if f.q.Pending(who) {
					t.Errorf("%s has a queued message after a refusal", who)
				}
			}
		})
	}
}

// A full queue refuses the whole message, for every recipient, and says so.
func TestRelayQueueFull(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{MaxMessages: 1})
	f.in(t, privAd)
	f.in(t, relayMsg("1", `<body>1</body>`, "to:bob@example.net"))
	waitQueue(t, f.q, "bob@example.net", true)
	f.in(t, relayMsg("2", `<body>2</body>`, "to:carol@example.net", "to:bob@example.net"))
	got := f.next(t)
	if !strings.Contains(got, "resource-constraint") || !strings.Contains(got, "bob@example.net") {
		t.Fatalf("want resource-constraint naming bob: %s", got)
	}
	if f.q.Pending("carol@example.net") {
		t.Error("carol got part of a refused message")
	}
}

func TestDiscoAdvertisesAddressing(t *testing.T) {
	var info wire.Info
	newRelayFixture(t, offline.Limits{}).r.Disco(&info)
	if got, err := wire.Marshal(info); err != nil || !strings.Contains(string(got), `<feature var="http://jabber.org/protocol/address">`) {
		t.Fatalf("disco#info lacks XEP-0033: %s %v", got, err)
	}
}

// fakePreviews previews one known link.
type fakePreviews struct{}

func (fakePreviews) Preview(_ context.Context, link string) (upload.Preview, bool) {
	if link != "https://up.example.net/file/x/cat.jpg" {
		return upload.Preview{}, false
	}
	return upload.Preview{Thumbnail: thumbnail.Thumbnail{Data: []byte("PNGDATA"), MediaType: "image/png", Width: 128, Height: 96},
		Name: "cat.jpg", Size: 1234, MediaType: "image/jpeg"}, true
}

func TestRelayAddsPreview(t *testing.T) {
	const link = "https://up.example.net/file/x/cat.jpg"
	cid := thumbnail.Thumbnail{Data: []byte("PNGDATA")}.CID()
	cases := []struct{ name, payload, want, notWant string }{
		{"oob only", `<body>` + link + `</body><x xmlns='jabber:x:oob'><url>` + link + `</url></x>`,
			`<file-sharing xmlns="urn:xmpp:sfs:0" disposition="inline"><file xmlns="urn:xmpp:file:metadata:0"><media-type>image/jpeg</media-type><name>cat.jpg</name><size>1234</size><thumbnail xmlns="urn:xmpp:thumbs:1" uri="cid:` + cid + `" media-type="image/png" width="128" height="96"></thumbnail></file><sources><url-data xmlns="http://jabber.org/protocol/url-data" target="` + link + `"></url-data></sources></file-sharing><data xmlns="urn:xmpp:bob" cid="` + cid + `" type="image/png" max-age="86400">UE5HREFUQQ==</data>`, ""},
		{"sfs without thumbnail", `<file-sharing xmlns='urn:xmpp:sfs:0'><file xmlns='urn:xmpp:file:metadata:0'><name>cat.jpg</name></file><sources><url-data xmlns='http://jabber.org/protocol/url-data' target='` + link + `'/></sources></file-sharing>`,
			`<name>cat.jpg</name><thumbnail xmlns="urn:xmpp:thumbs:1" uri="cid:` + cid + `"`, `<media-type>`},
		{"body only", `<body>` + link + `</body>`, `<data xmlns="urn:xmpp:bob" cid="` + cid + `"`, ""},
		{"has thumbnail", bob([]byte("x")), "", "PNGDATA"},
		{"other host", `<body>https://elsewhere.example/file/x/cat.jpg</body>`, "", "urn:xmpp:bob"},
		{"encrypted", `<body>aesgcm://up.example.net/file/x/cat.jpg#0011</body>`, "", "urn:xmpp:bob"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newRelayFixture(t, offline.Limits{})
			f.r.previews = fakePreviews{}
			f.in(t, relayMsg("p", c.payload, "to:bob@example.net"))
			got := f.next(t)
			if c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("lacks %s:\n%s", c.want, got)
			}
			if c.notWant != "" && strings.Contains(got, c.notWant) {
				t.Errorf("has %s:\n%s", c.notWant, got)
			}
		})
	}
}

// bobData reads the cid and the base64 text as XEP-0231 puts it: wrapped
// in lines, split by a comment, never the text of a nested element.
func TestBobData(t *testing.T) {
	in := `<data xmlns='urn:xmpp:bob' xmlns:o='urn:o' o:cid='no' cid='sha1+1@bob.xmpp.org'>QUJD` + "\r\n\t " + `RE<!-- c -->VG<x>Zm9v</x>&#x20;</data>`
	toks := tokens(t, in)
	cid, text := bobData(wire.Child{Start: toks[0].(xml.StartElement), Tokens: toks})
	if cid != "sha1+1@bob.xmpp.org" || string(text) != "QUJDREVG" {
		t.Fatalf("bobData = %q, %q", cid, text)
	}
}
