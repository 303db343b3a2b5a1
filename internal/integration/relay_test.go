package integration

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

type relayOut struct {
	Messages []string `json:"messages"`
	Errors   []string `json:"errors"`
	Error    *string  `json:"error"`
}

// slixRelay runs testdata/clients/slix_relay.py in the background; wait
// returns its report.
type slixRelay struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	stderr *testserver.LogBuffer
}

func startSlixRelay(t *testing.T, srv testserver.XMPP, mode, user, arg string, seconds int) *slixRelay {
	t.Helper()
	py := testserver.RequirePython(t, "slixmpp")
	host, port, _ := strings.Cut(srv.C2SAddr(), ":")
	s := &slixRelay{stderr: &testserver.LogBuffer{}}
	s.cmd = exec.Command(py, testserver.Testdata(t, "clients", "slix_relay.py"), mode, srv.JID(user), user, host, port, arg, fmt.Sprint(seconds))
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	testserver.WaitFor(t, 15*time.Second, user+" logged in", func() bool { return strings.Contains(s.stderr.String(), "ready") })
	return s
}

func (s *slixRelay) wait(t *testing.T) relayOut {
	t.Helper()
	_ = s.cmd.Wait()
	var out relayOut
	if err := json.Unmarshal([]byte(s.stdout.String()), &out); err != nil {
		t.Fatalf("slix_relay.py: %v\n%s\n%s", err, s.stdout.String(), s.stderr.String())
	}
	return out
}

// thumbnailPayload is a media message as Dino and `mediaslot send` build it:
// body + OOB + SFS with XEP-0446 metadata and XEP-0264 thumbnail, the
// thumbnail as XEP-0231 BoB, and an extension nobody knows.
func thumbnailPayload(url string) string {
	png := []byte("\x89PNG\r\n\x1a\n tiny thumbnail")
	sum := sha1.Sum(png)
	cid := "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"
	return `<body>` + url + `</body><x xmlns='jabber:x:oob'><url>` + url + `</url></x>` +
		`<file-sharing xmlns='urn:xmpp:sfs:0' disposition='inline'><file xmlns='urn:xmpp:file:metadata:0'>` +
		`<media-type>image/jpeg</media-type><name>cat é.jpg</name><size>48213</size><width>640</width><height>480</height>` +
		`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>2XarmwTlNxDAMkvymloX3S5+VbylNrJt/l5QyPa+YoU=</hash>` +
		`<thumbnail xmlns='urn:xmpp:thumbs:1' uri='cid:` + cid + `' media-type='image/png' width='8' height='6'/></file>` +
		`<sources><url-data xmlns='http://jabber.org/protocol/url-data' target='` + url + `'/></sources></file-sharing>` +
		`<data xmlns='urn:xmpp:bob' cid='` + cid + `' type='image/png' max-age='86400'>` + base64.StdEncoding.EncodeToString(png) + `</data>` +
		`<custom xmlns='urn:example:unknown' level='3'><inner>keep me &amp; my text</inner></custom>`
}

func relayStanza(t *testing.T, srv testserver.XMPP, id, payload string, to ...string) string {
	t.Helper()
	var a strings.Builder
	for _, u := range to {
		a.WriteString(`<address type='to' jid='` + srv.JID(u) + `'/>`)
	}
	x := `<message type='chat' id='` + id + `' to='` + srv.ComponentJID() + `'>` + payload +
		`<addresses xmlns='http://jabber.org/protocol/address'>` + a.String() + `</addresses></message>`
	path := filepath.Join(t.TempDir(), id+".xml")
	if err := os.WriteFile(path, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// meaning reduces XML to its namespaces, names, sorted attributes and text,
// for the children of the (innermost) message except relay bookkeeping.
func meaning(t *testing.T, msg string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(msg))
	var b strings.Builder
	depth, msgDepth, skip := 0, 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatalf("%v in %s", err, msg)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			depth++
			if v.Name.Local == "message" {
				msgDepth = depth
				b.Reset()
				continue
			}
			if skip == 0 && depth == msgDepth+1 && (v.Name.Space == "http://jabber.org/protocol/address" || v.Name.Space == "urn:xmpp:delay") {
				skip = depth
			}
			if skip == 0 {
				var attrs []string
				for _, a := range v.Attr {
					if a.Name.Local != "xmlns" && a.Name.Space != "xmlns" {
						attrs = append(attrs, a.Name.Space+":"+a.Name.Local+"="+a.Value)
					}
				}
				sort.Strings(attrs)
				ns := v.Name.Space
				if ns == "" || ns == "jabber:client" { // clients print the stanza namespace implicitly
					ns = "stanza"
				}
				fmt.Fprintf(&b, "<%s|%s %v>", ns, v.Name.Local, attrs)
			}
		case xml.EndElement:
			if skip == 0 && depth != msgDepth {
				b.WriteString("</>")
			}
			if skip == depth {
				skip = 0
			}
			depth--
		case xml.CharData:
			if skip == 0 && depth > msgDepth && msgDepth > 0 {
				b.WriteString(strings.TrimSpace(string(v)))
			}
		}
	}
}

// The relay end to end on a real Prosody with mod_privilege: bob is online
// and gets the media message at once, as from alice; carol is offline and
// gets it, with a delay, when she logs in, even though mediaslot was killed
// with SIGKILL and restarted and Prosody was restarted in between. The
// payload arrives unchanged. A refused message comes back as an error.
func TestRelay(t *testing.T) { forEachBackend(t, testRelay) }

func testRelay(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, backend)
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })

	bobRecv := startSlixRelay(t, srv, "receive", "bob", "1", 20)
	testserver.WaitFor(t, 10*time.Second, "bob online at mediaslot", func() bool {
		return strings.Contains(m.log.String(), "presence from=bob@localhost/")
	})
	payload := thumbnailPayload("http://127.0.0.1/file/abc/cat%20%C3%A9.jpg")
	want := meaning(t, `<message xmlns='jabber:client'>`+payload+`</message>`)
	send := startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "m1", payload, "bob", "carol"), 2)

	got := bobRecv.wait(t)
	if got.Error != nil || len(got.Messages) != 1 {
		t.Fatalf("bob: %+v", got)
	}
	bm := got.Messages[0]
	if !strings.Contains(bm, `from="alice@localhost`) && !strings.Contains(bm, `from='alice@localhost`) {
		t.Errorf("bob's copy is not from alice (privileged forwarding): %s", bm)
	}
	if strings.Contains(bm, "urn:xmpp:delay") {
		t.Errorf("live delivery carries a delay: %s", bm)
	}
	if g := meaning(t, bm); g != want {
		t.Errorf("payload changed on the way to bob:\n got %s\nwant %s", g, want)
	}
	if s := send.wait(t); len(s.Errors) != 0 {
		t.Fatalf("sender got errors: %v", s.Errors)
	}

	// carol is offline: queued. mediaslot dies hard and comes back; so does Prosody.
	testserver.WaitFor(t, 5*time.Second, "queued for carol", func() bool { return strings.Contains(m.log.String(), "queued=1") })
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	_ = m.cmd.Wait()
	m2 := restartMediaslot(t, m)
	srv.Restart()
	m2.waitConnected(2)

	carol := startSlixRelay(t, srv, "receive", "carol", "1", 20)
	got = carol.wait(t)
	if got.Error != nil || len(got.Messages) != 1 {
		t.Fatalf("carol: %+v\nmediaslot:\n%s", got, tail(m2.log.String(), 30))
	}
	cm := got.Messages[0]
	if !strings.Contains(cm, "urn:xmpp:delay") || !strings.Contains(cm, srv.ComponentJID()) {
		t.Errorf("carol's copy lacks a delay from the component: %s", cm)
	}
	if g := meaning(t, cm); g != want {
		t.Errorf("payload changed in the queue:\n got %s\nwant %s", g, want)
	}

	// refused: a thumbnail whose cid does not match its data
	bad := strings.Replace(payload, "cid='sha1+", "cid='sha1+00", 1)
	s := startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "m2", bad, "bob"), 2).wait(t)
	if len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "not-acceptable") || !strings.Contains(s.Errors[0], "cid") {
		t.Fatalf("want one not-acceptable error naming the cid, got %+v", s)
	}
}

// restartMediaslot starts a new process on the old one's config and state.
func restartMediaslot(t *testing.T, old *mediaslot) *mediaslot {
	t.Helper()
	m := &mediaslot{t: t, log: &testserver.LogBuffer{}, Config: old.Config, HTTP: old.HTTP}
	m.cmd = exec.CommandContext(context.Background(), binary, "serve", "--config", old.Config)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("restarted mediaslot log:\n%s", tail(m.log.String(), 80))
		}
	})
	m.waitConnected(1)
	return m
}

// A burst of 1000 relay messages to an offline recipient: what the relay
// accepted arrives complete and in order when she logs in; what came
// faster than it could be stored is refused with wait/resource-constraint
// (the read loop does not wait for one sender); an oversized stanza ahead
// of the burst is refused with policy-violation, and the burst behind it
// flows, while the component keeps serving. (Further into the burst it
// could find the sender's waiting room full, and be refused as too fast
// before its size is read: with PostgreSQL, whose commits take longer
// than bbolt's, it did.)
func TestRelayBurstAndOversize(t *testing.T) { forEachBackend(t, testRelayBurstAndOversize) }

func testRelayBurstAndOversize(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	// One sender may fill a quarter of a queue by default; this burst
	// is one sender's.
	m := startMediaslot(t, srv, "[relay]\nsender_share = 1.0\n"+backend)
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	var all strings.Builder
	for i := range 1000 {
		all.WriteString(fmt.Sprintf(`<message type='chat' id='b%d' to='%s'><body>burst %04d</body><addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='%s'/></addresses></message>`,
			i, srv.ComponentJID(), i, srv.JID("carol")))
		if i == 0 {
			all.WriteString(`<message type='chat' id='big' to='` + srv.ComponentJID() + `'><body>` + strings.Repeat("x", 70<<10) +
				`</body><addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='` + srv.JID("carol") + `'/></addresses></message>`)
		}
	}
	path := filepath.Join(t.TempDir(), "burst.xml")
	if err := os.WriteFile(path, []byte(all.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	sent := startSlixRelay(t, srv, "send", "alice", path, 8).wait(t)
	refused := map[string]bool{}
	big := 0
	for _, e := range sent.Errors {
		id := attrValue(e, "id")
		switch {
		case id == "big" && strings.Contains(e, "policy-violation"):
			big++
		case strings.HasPrefix(id, "b") && strings.Contains(e, `type="wait"`) && strings.Contains(e, "resource-constraint"):
			refused[id] = true
		default:
			t.Fatalf("unexpected error: %s", e)
		}
	}
	if big != 1 {
		t.Fatalf("want one policy-violation for the oversized message, got %d", big)
	}
	accepted := 1000 - len(refused)
	t.Logf("%d accepted, %d refused as too fast", accepted, len(refused))
	testserver.WaitFor(t, 20*time.Second, "all accepted queued", func() bool { return strings.Count(m.log.String(), `queued=1`) >= accepted })

	got := startSlixRelay(t, srv, "receive", "carol", fmt.Sprint(accepted), 60).wait(t)
	if got.Error != nil || len(got.Messages) != accepted {
		t.Fatalf("carol got %d of %d accepted messages: %v", len(got.Messages), accepted, got.Error)
	}
	next := 0
	for _, msg := range got.Messages {
		for refused[fmt.Sprintf("b%d", next)] {
			next++
		}
		if want := fmt.Sprintf("burst %04d", next); !strings.Contains(msg, want) {
			t.Fatalf("want %s (in order, refused ones left out): %.200s", want, msg)
		}
		next++
	}
	// and the component still serves slots
	file, data := writeRandomFile(t, "after.bin", 1000)
	checkSlixUpload(t, slixUpload(t, srv, "bob", srv.ComponentJID(), file), data, "application/octet-stream")
}

// An image uploaded through mediaslot and shared through the relay with
// only its URL arrives with a thumbnail mediaslot made (XEP-0264 in
// XEP-0446 metadata, the PNG as XEP-0231 data).
func TestRelayMakesThumbnail(t *testing.T) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, "")
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	img := image.NewRGBA(image.Rect(0, 0, 800, 600))
	for y := range 600 {
		for x := range 800 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sunset.jpg")
	if err := os.WriteFile(path, jb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	up := slixUpload(t, srv, "alice", srv.ComponentJID(), path)
	checkSlixUpload(t, up, jb.Bytes(), "image/jpeg")

	bobRecv := startSlixRelay(t, srv, "receive", "bob", "1", 20)
	testserver.WaitFor(t, 10*time.Second, "bob online", func() bool { return strings.Contains(m.log.String(), "presence from=bob@localhost/") })
	payload := `<body>` + up.GetURL + `</body><x xmlns='jabber:x:oob'><url>` + up.GetURL + `</url></x>`
	startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "img", payload, "bob"), 1).wait(t)
	got := bobRecv.wait(t)
	if got.Error != nil || len(got.Messages) != 1 {
		t.Fatalf("bob: %+v", got)
	}
	msg := got.Messages[0]
	for _, want := range []string{"urn:xmpp:thumbs:1", "urn:xmpp:bob", "urn:xmpp:file:metadata:0", "sunset.jpg", "image/png"} {
		if !strings.Contains(msg, want) {
			t.Errorf("bob's message lacks %s: %.600s", want, msg)
		}
	}
}

// attrValue returns an attribute of the top element of stanza.
func attrValue(stanza, name string) string {
	tok, err := xml.NewDecoder(strings.NewReader(stanza)).Token()
	if err != nil {
		return ""
	}
	if start, ok := tok.(xml.StartElement); ok {
		for _, a := range start.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
	}
	return ""
}

// Issue 12.1: mediaslot is killed with SIGKILL while it drains a queue and
// its read loop is busy with other users' slot requests. Every accepted
// message reaches the recipient after the restart: a queue entry is
// deleted only once its stanza was written to Prosody's socket. Duplicates
// stay within the bound docs/RELAY.md states (one drain batch, 256).
func TestRelayKillDuringDrain(t *testing.T) { forEachBackend(t, testRelayKillDuringDrain) }

func testRelayKillDuringDrain(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	// the 1000 messages come from one sender: let it fill carol's queue
	m := startMediaslot(t, srv, "[relay]\nsender_share = 1.0\n"+backend)
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	const n = 1000
	relayTo(t, dialClient(t, srv, "alice"), srv, "carol", "dur", n)
	testserver.WaitFor(t, 20*time.Second, "all queued", func() bool { return strings.Count(m.log.String(), "queued=1") >= n })

	ld := startLoad(t, srv, "bob", "dave") // keeps the read loop busy
	t0 := time.Now()
	testserver.WaitFor(t, 20*time.Second, "load running", func() bool { return ld.since(t0) > 0 })

	var mu sync.Mutex
	seen := map[int]int{}
	received := func() (distinct, total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range seen {
			total += c
		}
		return len(seen), total
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	carol, err := client.Dial(ctx, client.Options{JID: jid.MustParse(srv.JID("carol")), Password: "carol", Server: srv.C2SAddr(), Insecure: true,
		OnMessage: func(msg client.Message) {
			_, num, ok := strings.Cut(msg.Body, "/file/dur-")
			var i int
			if _, err := fmt.Sscanf(num, "%d/", &i); ok && err == nil {
				mu.Lock()
				seen[i]++
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	if err := carol.SendPresence(ctx); err != nil {
		t.Fatal(err)
	}
	// Prosody passes messages on to carol behind mediaslot's writes: the
	// first one arriving means the drain is under way.
	testserver.WaitFor(t, 30*time.Second, "the drain under way", func() bool { d, _ := received(); return d > 0 })
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	_ = m.cmd.Wait()
	killedAt, _ := received()

	// carol stays online: the new process learns it from Prosody and drains the rest
	m2 := restartMediaslot(t, m)
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range strings.Split(m2.log.String(), "\n") {
				if !strings.Contains(line, "slot ") && !strings.Contains(line, "upload complete") {
					t.Log(line)
				}
			}
		}
	})
	t.Cleanup(func() {
		if d, _ := received(); d != n {
			t.Logf("carol got %d of %d accepted messages; killed after %d had arrived", d, n, killedAt)
		}
	})
	testserver.WaitFor(t, 60*time.Second, "every accepted message at carol", func() bool {
		d, _ := received()
		return d == n
	})
	ld.end()
	distinct, total := received()
	t.Logf("killed after %d of %d; %d delivered, %d duplicates", killedAt, n, distinct, total-distinct)
	if total-distinct > 256 {
		t.Errorf("%d duplicates, more than one drain batch (256)\n%s", total-distinct, tail(m2.log.String(), 20))
	}
}

// Issue 12.6: only the server grants XEP-0356 privileges. Prosody routes
// urn:xmpp:privilege:1 to mediaslot from anyone (its mod_privilege takes
// :2 messages for itself): another component on the same server and a user
// forge advertisements that switch every privilege off (the relay would
// then hand messages for offline users to the server instead of queueing
// them). mediaslot ignores and logs them, and still queues for an offline
// recipient. A component that claims the server's domain is disconnected
// by Prosody (invalid-from), so the domain rule of relay.isServer holds.
func TestRelayForgedPrivileges(t *testing.T) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, "")
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	off := func(from, ns string) string {
		if from != "" {
			from = ` from='` + from + `'`
		}
		return `<message` + from + ` to='` + srv.ComponentJID() + `'><privilege xmlns='` + ns + `'>` +
			`<perm access='message' type='none'/><perm access='presence' type='none'/></privilege></message>`
	}
	other := "other." + srv.Domain
	conn, err := net.Dial("tcp", srv.ComponentAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := component.NewSession(ctx, jid.MustParse(other), []byte(srv.ComponentSecret()), conn)
	if err != nil {
		t.Fatalf("connecting as %s: %v", other, err)
	}
	defer sess.Close()
	for _, x := range []string{off(other, "urn:xmpp:privilege:1"), off(other, "urn:xmpp:privilege:2"), off(srv.Domain, "urn:xmpp:privilege:2")} {
		if err := sess.Send(ctx, xml.NewDecoder(strings.NewReader(x))); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "forged.xml")
	if err := os.WriteFile(path, []byte(off("", "urn:xmpp:privilege:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	startSlixRelay(t, srv, "send", "alice", path, 1).wait(t)
	testserver.WaitFor(t, 10*time.Second, "forged advertisements ignored", func() bool {
		log := m.log.String()
		return strings.Count(log, "ignored a privilege advertisement not from the server") >= 2 &&
			strings.Contains(log, "from="+other) && strings.Contains(log, "from="+srv.JID("alice"))
	})

	relayTo(t, dialClient(t, srv, "alice"), srv, "carol", "forged", 1)
	if log := m.log.String(); strings.Count(log, "server privileges") != 1 || !strings.Contains(log, "queued=1") {
		t.Fatalf("a forged advertisement changed the privileges: carol's message was not queued\n%s", tail(log, 20))
	}
}
