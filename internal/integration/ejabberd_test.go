package integration

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"mediaslot/client"
	"mediaslot/testserver"
)

// TestEjabberd runs the slot, upload, download and relay tests of the
// Prosody suite against ejabberd 23.01, which is stricter: it closes the
// stream of a component that leaves out from, speaks urn:xmpp:privilege:1,
// lists its own mod_http_upload next to the component in disco#items, and
// forwards presences only as they happen (none when the component
// connects). One ejabberd serves all subtests of a backend.
func TestEjabberd(t *testing.T) { forEachBackend(t, testEjabberd) }

func testEjabberd(t *testing.T, backend string) {
	srv := testserver.Ejabberd(t)
	m := startMediaslot(t, srv, backend)
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool {
		return strings.Contains(m.log.String(), `msg="server privileges" server=localhost namespace=urn:xmpp:privilege:1 message=true presence=true`)
	})

	t.Run("slixmpp", func(t *testing.T) {
		file, data := writeRandomFile(t, "photo été.jpg", 300_000)
		res := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
		checkSlixUpload(t, res, data, "image/jpeg")
		if !strings.HasPrefix(res.GetURL, m.HTTP+"/file/") {
			t.Errorf("GET URL %s, want %s/file/...", res.GetURL, m.HTTP)
		}
	})

	// ejabberd's own service works with the same client: the baseline.
	t.Run("mod_http_upload", func(t *testing.T) {
		file, data := writeRandomFile(t, "baseline.txt", 20_000)
		res := slixUpload(t, srv, "bob", srv.ShareJID(), file)
		if res.PutStatus != 201 || res.GetStatus != 200 || res.GetSHA256 != sha(data) {
			t.Errorf("mod_http_upload: PUT %d GET %d sha %s, want 201 200 %s", res.PutStatus, res.GetStatus, res.GetSHA256, sha(data))
		}
		if !res.ListedInItems {
			t.Errorf("%s not in disco#items: go-sendxmpp's choice below would not be tested", srv.ShareJID())
		}
	})

	// go-sendxmpp takes the last item of disco#items that offers
	// urn:xmpp:http:upload:0; ejabberd sorts them, so upload.<domain> comes
	// after share.<domain>. The URL it sends must be mediaslot's.
	t.Run("go-sendxmpp", func(t *testing.T) { goSendxmpp(t, srv, m, "alice", "bob") })

	t.Run("relay", func(t *testing.T) { ejabberdRelay(t, srv, m) })
}

// ejabberdRelay: bob is online and gets the relayed message at once, as
// from alice through privilege:1 forwarding. carol was seen going offline,
// so mediaslot queues her copy and delivers it, with its delay, when she
// logs in after ejabberd was restarted. dave was never seen: ejabberd does
// not report presences when the component connects, so mediaslot cannot
// tell whether he is online and hands his copy to ejabberd, whose
// mod_offline keeps it. Every copy arrives unchanged.
func ejabberdRelay(t *testing.T, srv *testserver.EjabberdServer, m *mediaslot) {
	presenceBlip(t, srv, "carol")
	testserver.WaitFor(t, 10*time.Second, "carol seen going offline", func() bool {
		return strings.Contains(m.log.String(), "presence from=carol@localhost/") &&
			strings.Contains(m.log.String(), "type=unavailable")
	})

	bobSeen := strings.Count(m.log.String(), "presence from=bob@localhost/")
	bobRecv := startSlixRelay(t, srv, "receive", "bob", "1", 20)
	testserver.WaitFor(t, 10*time.Second, "bob online at mediaslot", func() bool {
		return strings.Count(m.log.String(), "presence from=bob@localhost/") > bobSeen
	})
	payload := thumbnailPayload("http://127.0.0.1/file/abc/cat%20%C3%A9.jpg")
	want := children(t, `<message xmlns='jabber:client'>`+payload+`</message>`)
	if n := strings.Count(want, "\n") + 1; n != 5 {
		t.Fatalf("the payload has %d children, want 5 (body, oob, sfs, bob, custom):\n%s", n, want)
	}
	send := startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "ej1", payload, "bob", "carol", "dave"), 2)

	got := bobRecv.wait(t)
	if got.Error != nil || len(got.Messages) != 1 {
		t.Fatalf("bob: %+v", got)
	}
	bm := got.Messages[0]
	if !fromAlice(bm) {
		t.Errorf("bob's copy is not from alice (privileged forwarding): %s", bm)
	}
	if strings.Contains(bm, "urn:xmpp:delay") {
		t.Errorf("live delivery carries a delay: %s", bm)
	}
	if g := children(t, bm); g != want {
		t.Errorf("payload changed on the way to bob:\n got %s\nwant %s", g, want)
	}
	if s := send.wait(t); len(s.Errors) != 0 {
		t.Fatalf("sender got errors: %v", s.Errors)
	}
	testserver.WaitFor(t, 5*time.Second, "bob and dave served, carol queued", func() bool {
		return strings.Contains(m.log.String(), "delivered=2 queued=1")
	})

	// A refusal goes back to the sender as an error message from the
	// component: ejabberd routes it (it has a from) and keeps the link.
	alice := dialClient(t, srv, "alice")
	err := alice.SendMedia(context.Background(), client.Media{URL: "http://127.0.0.1/file/x/y.jpg", Name: "y.jpg", MediaType: "image/jpeg", Size: 1},
		client.Delivery{To: []jid.JID{jid.MustParse("bob@elsewhere.example")}, Relay: jid.MustParse(srv.ComponentJID())})
	var re *client.RecipientError
	if !errors.As(err, &re) || !errors.Is(err, client.ErrForbidden) || re.To != srv.ComponentJID() {
		t.Errorf("relay to a foreign domain: %v, want forbidden from %s", err, srv.ComponentJID())
	}
	if strings.Contains(m.log.String(), "component link down") {
		t.Fatalf("ejabberd dropped the component link (a stanza without from?):\n%s", tail(m.log.String(), 20))
	}

	// ejabberd restarts; mediaslot reconnects by itself.
	connected := strings.Count(m.log.String(), "component connected")
	srv.Stop()
	up := make(chan time.Time, 1)
	go func() { at, _ := waitAccepting(srv.ComponentAddr(), 30*time.Second); up <- at }()
	srv.Start()
	m.waitConnected(connected + 1)
	t.Logf("component connected %v after ejabberd's component port accepted",
		logTimes(t, m.log.String(), "component connected")[connected].Sub(<-up).Round(time.Millisecond))

	for _, c := range []struct {
		user, delayFrom string
	}{{"carol", srv.ComponentJID()}, {"dave", srv.Domain}} {
		got = startSlixRelay(t, srv, "receive", c.user, "1", 20).wait(t)
		if got.Error != nil || len(got.Messages) != 1 {
			t.Fatalf("%s: %+v", c.user, got)
		}
		msg := got.Messages[0]
		if !strings.Contains(msg, "urn:xmpp:delay") || !strings.Contains(msg, `from="`+c.delayFrom+`"`) {
			t.Errorf("%s's copy lacks a delay from %s: %s", c.user, c.delayFrom, msg)
		}
		if !fromAlice(msg) {
			t.Errorf("%s's copy is not from alice: %s", c.user, msg)
		}
		if g := children(t, msg); g != want {
			t.Errorf("payload changed on the way to %s:\n got %s\nwant %s", c.user, g, want)
		}
	}
}

// children is meaning for each child of the message, sorted: ejabberd
// re-encodes the stanzas it routes and puts <body/> after the extensions.
// The order of a message's children carries no meaning in XMPP.
func children(t *testing.T, msg string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(msg))
	var kids []string
	var cur []xml.Token
	depth, msgDepth := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%v in %s", err, msg)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			depth++
			if v.Name.Local == "message" {
				msgDepth, kids, cur = depth, nil, nil
				continue
			}
		case xml.EndElement:
			depth--
		}
		if msgDepth == 0 || depth < msgDepth {
			continue
		}
		cur = append(cur, xml.CopyToken(tok))
		if _, end := tok.(xml.EndElement); end && depth == msgDepth {
			var b strings.Builder
			e := xml.NewEncoder(&b)
			for _, tk := range cur {
				if err := e.EncodeToken(tk); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}
			if k := meaning(t, `<message xmlns='jabber:client'>`+b.String()+`</message>`); k != "" {
				kids = append(kids, k)
			}
			cur = nil
		} else if _, ok := tok.(xml.CharData); ok && depth == msgDepth {
			cur = nil // whitespace between children
		}
	}
	sort.Strings(kids)
	return strings.Join(kids, "\n")
}

func fromAlice(msg string) bool {
	return strings.Contains(msg, `from="alice@localhost`) || strings.Contains(msg, `from='alice@localhost`)
}

// presenceBlip logs user in, sends an available and then an unavailable
// presence, and logs out: ejabberd forwards both to the component. (Clients
// that just close the stream, as slixmpp does, are never reported offline.)
func presenceBlip(t *testing.T, srv testserver.XMPP, user string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := net.DialTimeout("tcp", srv.C2SAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	j := jid.MustParse(srv.JID(user))
	sess, err := xmpp.NewClientSession(ctx, j, conn,
		xmpp.StartTLS(&tls.Config{ServerName: j.Domainpart(), InsecureSkipVerify: true}),
		xmpp.SASL("", user, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource())
	if err != nil {
		t.Fatalf("%s: login: %v", user, err)
	}
	go func() { _ = sess.Serve(nil) }()
	for _, p := range []stanza.Presence{{}, {Type: stanza.UnavailablePresence}} {
		if err := sess.Send(ctx, p.Wrap(nil)); err != nil {
			t.Fatalf("%s: presence: %v", user, err)
		}
	}
	_ = sess.Close()
}

// docs/EJABBERD.md shows the component listener and the mod_privilege
// section of the template the tests run with, rendered for example.net.
func TestEjabberdDocSnippets(t *testing.T) {
	doc, err := os.ReadFile(testserver.ModuleRoot(t) + "/docs/EJABBERD.md")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(testserver.Testdata(t, "ejabberd", "ejabberd.yml.in"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testserver.RenderEjabberdConfig(string(tmpl), ejabberdDocValues)
	for _, name := range []string{"component listener", "privilege module"} {
		if got, want := markedBlock(t, string(doc), name, "yaml"), configBlock(t, cfg, "#", name); got != want {
			t.Errorf("docs/EJABBERD.md %q differs from testdata/ejabberd/ejabberd.yml.in rendered with %v:\n--- docs\n%s--- template\n%s", name, ejabberdDocValues, got, want)
		}
	}
	// the balancing of make demo-cluster, appended to the template there
	tmpl, err = os.ReadFile(testserver.Testdata(t, "ejabberd", "balancing.yml.in"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = testserver.RenderEjabberdConfig(string(tmpl), ejabberdDocValues)
	if got, want := markedBlock(t, string(doc), "balancing", "yaml"), configBlock(t, cfg, "#", "balancing"); got != want {
		t.Errorf("docs/EJABBERD.md \"balancing\" differs from testdata/ejabberd/balancing.yml.in rendered with %v:\n--- docs\n%s--- template\n%s", ejabberdDocValues, got, want)
	}
}

// ejabberdDocValues are the placeholder values docs/EJABBERD.md shows.
var ejabberdDocValues = map[string]string{
	"DOMAIN": "example.net",
	"COMP":   "5347",
	"SECRET": "a-long-random-secret",
	"N":      "3",
}
