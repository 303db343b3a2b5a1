package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

var (
	variantsN       = flag.Int("variants.n", 500, "BenchmarkFlushVariants: messages per variant and round")
	variantsRounds  = flag.Int("variants.rounds", 3, "BenchmarkFlushVariants: rounds")
	variantsLuaProf = flag.String("variants.luaprof", "", "BenchmarkFlushVariants: load bench/testdata/mod_luaprof.lua into Prosody and write its profile of each variant of the last round to DIR/luaprof.N (N-1 = the variant's index)")
	variantsPerf    = flag.String("variants.perf", "", "BenchmarkFlushVariants: record the server with perf in the last round into DIR/SERVER-variant-I.data and DIR/SERVER-baseline-THUMBBYTES.data (for ejabberd, MEDIASLOT_EJABBERD_ERL_FLAGS=\"+JPperf true\" has perf name Erlang functions)")
	variantsServers = flag.String("variants.servers", "prosody,ejabberd", "BenchmarkFlushVariants: the XMPP servers")
)

// luaProf resets Prosody's mod_luaprof and returns the function that makes
// it write what it sampled since, if -variants.luaprof. The module
// answers a reset by writing its count to LUAPROF_OUT.resets and a dump
// by writing LUAPROF_OUT.N: the benchmark waits for those.
func luaProf(b *testing.B, srv variantServer) func() {
	if *variantsLuaProf == "" || srv.name != "prosody" {
		return func() {}
	}
	luaProfs++
	out, n := filepath.Join(*variantsLuaProf, "luaprof"), fmt.Sprint(luaProfs)
	_ = syscall.Kill(srv.pid, syscall.SIGUSR1)
	testserver.WaitFor(b, 10*time.Second, "mod_luaprof's reset", func() bool {
		got, _ := os.ReadFile(out + ".resets")
		return string(got) == n
	})
	return func() {
		_ = syscall.Kill(srv.pid, syscall.SIGUSR2)
		testserver.WaitFor(b, 10*time.Second, "mod_luaprof's profile", func() bool {
			_, err := os.Stat(out + "." + n)
			return err == nil
		})
	}
}

// luaProfs counts the profiles asked of mod_luaprof.
var luaProfs int

// perfRecord runs `perf record -g` on pid into dir/name.data, if dir is
// set, from when it returns until the returned function is called: perf
// starts with its events disabled and is switched on and off through its
// control FIFO, which acknowledges each command.
func perfRecord(b *testing.B, dir string, pid int, name string) func() {
	if dir == "" {
		return func() {}
	}
	ctl, ack := filepath.Join(b.TempDir(), "ctl"), filepath.Join(b.TempDir(), "ack")
	for _, f := range []string{ctl, ack} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command("perf", "record", "-q", "-F", "1999", "-g", "-D", "-1", "--control", "fifo:"+ctl+","+ack,
		"-p", fmt.Sprint(pid), "-o", filepath.Join(dir, name+".data"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ctlW, err := os.OpenFile(ctl, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	ackR, err := os.Open(ack)
	if err != nil {
		b.Fatal(err)
	}
	command := func(c string) {
		if _, err := ctlW.WriteString(c + "\n"); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := ackR.Read(buf); err != nil {
			b.Fatalf("perf %s: %v", c, err)
		}
	}
	command("enable")
	return func() {
		command("disable")
		ctlW.Close()
		ackR.Close()
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
}

// flushVariant is one way a component could hand Prosody the messages of a
// flush, for BenchmarkFlushVariants.
type flushVariant struct {
	name       string
	privileged bool // XEP-0356 forward as from the sender; else from the component
	fullJID    bool // to the recipient's full JID instead of the bare one
	thumb      int  // bytes of BoB thumbnail (0: a ~1 KB message)
	pingEvery  int  // one XEP-0199 ping after this many messages
	window     int  // pings unanswered at most before the next write
	coalesce   bool // a batch of pingEvery messages and its ping in one write, not one write each
}

// variantServer is the XMPP server of BenchmarkFlushVariants.
type variantServer struct {
	testserver.XMPP
	name, domain string
	ns           string // the XEP-0356 namespace it speaks
	pid          int
}

// BenchmarkFlushVariants (issue 17.3) measures what a relay flush costs
// the XMPP server, and how long it takes, depending on what the component
// sends: the test connects as the component itself (the server grants it
// the privileges mediaslot gets) and delivers N media messages to bob,
// online, in each variant, in alternating rounds; mediaslot's flush today
// is "now" (a privileged forward to the bare JID, each followed by a ping
// whose answer is awaited). The baseline is the server's own mod_offline
// flushing the same messages to dave at login. The server's CPU is read
// from /proc. It only measures; -benchtime 1x.
func BenchmarkFlushVariants(b *testing.B) {
	for _, name := range strings.Split(*variantsServers, ",") {
		b.Run(name, func(b *testing.B) {
			switch name {
			case "prosody":
				if *variantsLuaProf != "" {
					b.Setenv("PROSODY_LUAPROF", filepath.Join(testserver.ModuleRoot(b), "bench", "testdata"))
					b.Setenv("LUAPROF_OUT", filepath.Join(*variantsLuaProf, "luaprof"))
				}
				s := testserver.Prosody(b)
				flushVariants(b, variantServer{XMPP: s, name: name, domain: s.Domain, ns: "urn:xmpp:privilege:2", pid: s.PID()})
			case "ejabberd":
				s := testserver.Ejabberd(b)
				flushVariants(b, variantServer{XMPP: s, name: name, domain: s.Domain, ns: "urn:xmpp:privilege:1", pid: s.PID()})
			default:
				b.Fatalf("-variants.servers: unknown server %q", name)
			}
		})
	}
}

func flushVariants(b *testing.B, srv variantServer) {
	variants := []flushVariant{
		{name: "now: forward, bare JID, ping+wait per message", privileged: true, thumb: 5600, pingEvery: 1, window: 1},
		{name: "ping per message, 16 unanswered", privileged: true, thumb: 5600, pingEvery: 1, window: 16},
		{name: "one ping per 16 messages", privileged: true, thumb: 5600, pingEvery: 16, window: 1},
		{name: "one ping per 16 messages, 4 pings unanswered", privileged: true, thumb: 5600, pingEvery: 16, window: 4},
		{name: "one ping per 64 messages", privileged: true, thumb: 5600, pingEvery: 64, window: 1},
		{name: "one ping per 256 messages (a drain batch)", privileged: true, thumb: 5600, pingEvery: 256, window: 1},
		{name: "one ping per 64, each batch in one write", privileged: true, thumb: 5600, pingEvery: 64, window: 1, coalesce: true},
		{name: "per 16, to the full JID", privileged: true, fullJID: true, thumb: 5600, pingEvery: 16, window: 1},
		{name: "per 16, not privileged (from the component)", privileged: false, thumb: 5600, pingEvery: 16, window: 1},
		{name: "per 16, 1 KB message (no thumbnail)", privileged: true, thumb: 0, pingEvery: 16, window: 1},
		{name: "now, 1 KB message (no thumbnail)", privileged: true, thumb: 0, pingEvery: 1, window: 1},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	prosody := Proc{Name: srv.name, PID: srv.pid}
	account := func(user string) client.Options {
		return client.Options{JID: jid.MustParse(srv.JID(user)), Password: user, Server: srv.C2SAddr(), Insecure: true}
	}

	var got atomic.Int64
	bopt := account("bob")
	bopt.OnMessage = func(client.Message) { got.Add(1) }
	bob, err := client.Dial(ctx, bopt)
	if err != nil {
		b.Fatal(err)
	}
	defer bob.Close()
	if err := bob.SendPresence(ctx); err != nil {
		b.Fatal(err)
	}
	comp := dialComponent(ctx, b, srv)
	defer comp.close()

	type sample struct{ cpu, wall []float64 }
	baselines := []int{5600, 0} // thumbnail bytes of mod_offline's messages
	results := make([]sample, len(variants)+len(baselines))
	n := *variantsN
	waitFor := func(counter *atomic.Int64, want int64) {
		testserver.WaitFor(b, 2*time.Minute, "messages", func() bool { return counter.Load() >= want })
		if counter.Load() > want {
			b.Fatalf("%d messages arrived, want %d", counter.Load(), want)
		}
	}
	for range b.N {
		for round := range *variantsRounds {
			for i, v := range variants {
				msgs := make([][]byte, n)
				to := bob.JID().Bare().String()
				if v.fullJID {
					to = bob.JID().String()
				}
				for k := range msgs {
					msgs[k] = variantStanza(srv, v, to, fmt.Sprintf("v%d-%d-%d", i, round, k))
				}
				fmt.Fprintf(os.Stderr, "bench variants: %s round %d/%d: %s\n", srv.name, round+1, *variantsRounds, v.name)
				got.Store(0)
				stopPerf := func() {}
				if round == *variantsRounds-1 {
					stopPerf0 := perfRecord(b, *variantsPerf, prosody.PID, fmt.Sprintf("%s-variant-%d", srv.name, i))
					stopLua := luaProf(b, srv)
					stopPerf = func() { stopPerf0(); stopLua() }
				}
				w := prosody.Watch()
				t0 := time.Now()
				if err := comp.deliver(msgs, v.pingEvery, v.window, v.coalesce); err != nil {
					b.Fatal(err)
				}
				waitFor(&got, int64(n))
				wall := time.Since(t0).Seconds()
				u, err := w()
				stopPerf()
				if err != nil {
					b.Fatal(err)
				}
				results[i].cpu = append(results[i].cpu, u.CPUSeconds)
				results[i].wall = append(results[i].wall, wall)
			}
			for j, thumb := range baselines {
				cpu, wall := offlineFlush(ctx, b, srv, prosody, n, round, thumb)
				results[len(variants)+j].cpu = append(results[len(variants)+j].cpu, cpu)
				results[len(variants)+j].wall = append(results[len(variants)+j].wall, wall)
			}
		}
	}
	base := results[0]
	var out strings.Builder
	fmt.Fprintf(&out, "%s: %d messages per variant, %d rounds; %s CPU per message over all rounds, flush time median\n", srv.name, n, *variantsRounds, srv.name)
	fmt.Fprintf(&out, "| variant | %s CPU µs/message | vs now | flush s (median) | vs now |\n|---|---|---|---|---|\n", srv.name)
	names := append(slicesOfNames(variants), "baseline: the server's mod_offline flush at login", "baseline, 1 KB message (no thumbnail)")
	for i, r := range results {
		cpu := sum(r.cpu) * 1e6 / float64(n*len(r.cpu))
		fmt.Fprintf(&out, "| %s | %.0f | %.2f | %.3f | %.2f |\n", names[i], cpu, sum(r.cpu)/sum(base.cpu), medianOf(r.wall), medianOf(r.wall)/medianOf(base.wall))
	}
	fmt.Fprint(os.Stderr, out.String())
}

func slicesOfNames(v []flushVariant) []string {
	var s []string
	for _, x := range v {
		s = append(s, x.name)
	}
	return s
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return median(s)
}

// offlineFlush: alice sends n plain messages to dave, offline (Prosody's
// mod_offline keeps them), then dave logs in; it returns Prosody's CPU
// and the time from dave's presence to his last message.
func offlineFlush(ctx context.Context, b *testing.B, srv variantServer, prosody Proc, n, round, thumbBytes int) (cpu, wall float64) {
	alice, err := client.Dial(ctx, client.Options{JID: jid.MustParse(srv.JID("alice")), Password: "alice", Server: srv.C2SAddr(), Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	defer alice.Close()
	var thumbnail *client.Thumbnail
	if thumbBytes > 0 {
		thumb := make([]byte, thumbBytes)
		_, _ = rand.Read(thumb)
		thumbnail = &client.Thumbnail{Data: thumb, MediaType: "image/png", Width: 96, Height: 72}
	}
	dave := jid.MustParse(srv.JID("dave"))
	for k := range n {
		name := fmt.Sprintf("o-%d-%d-%d.jpg", thumbBytes, round, k)
		m := client.Media{URL: "http://127.0.0.1/file/" + strings.Repeat("0", 32) + "/" + name, Name: name, MediaType: "image/jpeg", Size: 2_345_678, Width: 4000, Height: 3000,
			Thumbnail: thumbnail}
		if err := alice.SendMedia(ctx, m, client.Delivery{To: []jid.JID{dave}}); err != nil {
			b.Fatal(err)
		}
	}
	var got atomic.Int64
	dc, err := client.Dial(ctx, client.Options{JID: dave, Password: "dave", Server: srv.C2SAddr(), Insecure: true, OnMessage: func(client.Message) { got.Add(1) }})
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close()
	stopProf := func() {}
	if round == *variantsRounds-1 {
		stopPerf := perfRecord(b, *variantsPerf, prosody.PID, fmt.Sprintf("%s-baseline-%d", srv.name, thumbBytes))
		stopLua := luaProf(b, srv)
		stopProf = func() { stopPerf(); stopLua() }
	}
	defer stopProf()
	w := prosody.Watch()
	t0 := time.Now()
	if err := dc.SendPresence(ctx); err != nil {
		b.Fatal(err)
	}
	testserver.WaitFor(b, 2*time.Minute, "dave's messages", func() bool { return got.Load() >= int64(n) })
	wall = time.Since(t0).Seconds()
	u, err := w()
	if err != nil {
		b.Fatal(err)
	}
	return u.CPUSeconds, wall
}

// variantStanza is one delivery as v sends it: the stored media message,
// with its delay, forwarded as from alice or sent from the component.
func variantStanza(srv variantServer, v flushVariant, to, id string) []byte {
	url := "http://127.0.0.1/file/" + strings.Repeat("0", 32) + "/" + id + ".jpg"
	var payload strings.Builder
	payload.WriteString(`<body>` + url + `</body><x xmlns="jabber:x:oob"><url>` + url + `</url></x>`)
	thumbRef, bob := "", ""
	if v.thumb > 0 {
		data := make([]byte, v.thumb)
		_, _ = rand.Read(data)
		h := sha1.Sum(data)
		cid := "sha1+" + hex.EncodeToString(h[:]) + "@bob.xmpp.org"
		thumbRef = `<thumbnail xmlns="urn:xmpp:thumbs:1" uri="cid:` + cid + `" media-type="image/png" width="96" height="72"></thumbnail>`
		bob = `<data xmlns="urn:xmpp:bob" cid="` + cid + `" type="image/png" max-age="86400">` + base64.StdEncoding.EncodeToString(data) + `</data>`
	}
	payload.WriteString(`<file-sharing xmlns="urn:xmpp:sfs:0" disposition="inline"><file xmlns="urn:xmpp:file:metadata:0"><media-type>image/jpeg</media-type><name>` + id +
		`.jpg</name><size>2345678</size><width>4000</width><height>3000</height>` + thumbRef + `</file><sources><url-data xmlns="http://jabber.org/protocol/url-data" target="` + url + `"></url-data></sources></file-sharing>`)
	payload.WriteString(bob)
	payload.WriteString(`<addresses xmlns="http://jabber.org/protocol/address"><address type="to" jid="` + srv.JID("bob") + `" delivered="true"/></addresses>`)
	payload.WriteString(`<delay xmlns="urn:xmpp:delay" from="` + srv.ComponentJID() + `" stamp="2026-12-03T10:00:00Z"/>`)
	if v.privileged {
		return []byte(`<message from="` + srv.ComponentJID() + `" to="` + srv.domain + `"><privilege xmlns="` + srv.ns + `"><forwarded xmlns="urn:xmpp:forward:0">` +
			`<message xmlns="jabber:client" type="chat" id="` + id + `" from="` + srv.JID("alice") + `" to="` + to + `">` + payload.String() +
			`</message></forwarded></privilege></message>`)
	}
	return []byte(`<message type="chat" id="` + id + `" from="` + srv.ComponentJID() + `" to="` + to + `">` + payload.String() + `</message>`)
}

// benchComponent is a raw XEP-0114 link: stanzas written as bytes, the
// answers to its pings counted by a reader goroutine.
type benchComponent struct {
	conn    net.Conn
	srv     variantServer
	answers chan string
	close   func()
	next    int
}

func dialComponent(ctx context.Context, b *testing.B, srv variantServer) *benchComponent {
	conn, err := net.Dial("tcp", srv.ComponentAddr())
	if err != nil {
		b.Fatal(err)
	}
	sess, err := component.NewSession(ctx, jid.MustParse(srv.ComponentJID()), []byte(srv.ComponentSecret()), conn)
	if err != nil {
		b.Fatalf("connecting as %s: %v", srv.ComponentJID(), err)
	}
	c := &benchComponent{conn: conn, srv: srv, answers: make(chan string, 1024)}
	// The server grants the privileges when the component connects and
	// says so in an advertisement; a forward sent before it is refused.
	privileged := make(chan struct{})
	c.close = func() { _ = sess.Close(); _ = conn.Close() }
	go func() {
		r := sess.TokenReader()
		defer r.Close()
		depth, advertised := 0, false
		for {
			tok, err := r.Token()
			if err != nil {
				close(c.answers)
				return
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if depth == 1 && t.Name.Local == "privilege" && !advertised {
					close(privileged)
					advertised = true
				}
				if depth == 0 && t.Name.Local == "iq" {
					for _, a := range t.Attr {
						if a.Name.Local == "id" {
							c.answers <- a.Value
						}
					}
				}
				depth++
			case xml.EndElement:
				depth--
			}
		}
	}()
	select {
	case <-privileged:
	case <-ctx.Done():
		b.Fatalf("no privilege advertisement from %s", srv.domain)
	}
	return c
}

// deliver writes msgs with a ping after every pingEvery of them, waiting
// for answers whenever window pings are unanswered, and at the end for all
// of them; with coalesce, each batch and its ping go in one write.
func (c *benchComponent) deliver(msgs [][]byte, pingEvery, window int, coalesce bool) error {
	pending := 0
	var buf []byte
	for k, m := range msgs {
		buf = append(buf, m...)
		last := (k+1)%pingEvery == 0 || k == len(msgs)-1
		if last {
			c.next++
			buf = append(buf, `<iq type="get" id="p`+fmt.Sprint(c.next)+`" from="`+c.srv.ComponentJID()+`" to="`+c.srv.domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`...)
			pending++
		}
		if !coalesce || last {
			if _, err := c.conn.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		for pending >= window || (k == len(msgs)-1 && pending > 0) {
			if _, ok := <-c.answers; !ok {
				return fmt.Errorf("component stream closed")
			}
			pending--
		}
	}
	return nil
}
