package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// cluster is several `mediaslot serve` processes as one service: one
// component JID on one XMPP server, one PostgreSQL database, one S3 bucket,
// one token key; each with an HTTP front and an admin listener of its own.
type cluster struct {
	t     *testing.T
	insts []*instance
}

// instance is one process of a cluster, which the test kills with SIGKILL
// and starts again with the same configuration and ports.
type instance struct {
	n     int
	cfg   string
	http  string // host:port of its HTTP front (its public_url)
	admin string // host:port of its admin listener
	log   *testserver.LogBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	dead bool // not started, or killed by the test, and not ready since
}

// startCluster starts n instances for srv with their records and queue in
// the PostgreSQL database dsn and their files in gw (downloads proxied, so
// a GET's bytes flow through the instance it reaches), and waits until each
// is ready: connected to the XMPP server, the store probed.
func startCluster(t *testing.T, srv testserver.XMPP, dsn string, gw *testserver.S3, n int) *cluster {
	t.Helper()
	c := newCluster(t, srv, dsn, gw, n, "")
	c.startAll(t)
	return c
}

// startAll starts every instance and waits until each is ready.
func (c *cluster) startAll(t *testing.T) {
	t.Helper()
	for _, in := range c.insts {
		in.start(t)
	}
	for _, in := range c.insts {
		in.waitReady(t)
	}
}

// newCluster configures n instances as startCluster does, extra appended
// to each configuration, and starts none.
func newCluster(t *testing.T, srv testserver.XMPP, dsn string, gw *testserver.S3, n int, extra string) *cluster {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c := &cluster{t: t}
	for i := range n {
		admin := freePort(t)
		// The load asks for slots as fast as it can, two workers per user:
		// the per-user rate limit, which each instance keeps for itself
		// (docs/EJABBERD.md), is off, or the survivors of a kill refuse it.
		more := fmt.Sprintf("[upload]\ntoken_key = %q\nslot_rate = 0.0\n[admin]\nlisten = %q\n%s%s", hex.EncodeToString(key), admin, gw.StoreConfig("proxy"), extra)
		cfg, addr := writeConfig(t, srv, more)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// each instance names its sessions, so a test can tell who holds a lock
		data := fmt.Sprintf("[data]\ndir = \"data\"\nbackend = \"postgres\"\ndsn = %q\n", dsn+"&application_name=mediaslot-"+fmt.Sprint(i+1))
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "[data]\ndir = \"data\"\n", data, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		in := &instance{n: i + 1, cfg: cfg, http: addr, admin: admin, log: &testserver.LogBuffer{}, dead: true}
		c.insts = append(c.insts, in)
		t.Cleanup(func() {
			in.stop(t)
			if t.Failed() {
				t.Logf("instance %d log:\n%s", in.n, tail(in.log.String(), 40))
			}
		})
	}
	return c
}

func (in *instance) start(t *testing.T) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	fmt.Fprintf(in.log, "--- instance %d starts\n", in.n)
	in.cmd = exec.Command(binary, "serve", "--config", in.cfg)
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// kill ends the process with SIGKILL: no shutdown, sockets closed by the kernel.
func (in *instance) kill(t *testing.T) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.dead = true
	if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = in.cmd.Wait()
}

func (in *instance) alive() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return !in.dead
}

func (in *instance) stop(t *testing.T) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil || in.cmd.ProcessState != nil {
		return
	}
	if !testserver.Stop(in.cmd, os.Interrupt, 10*time.Second) {
		t.Errorf("instance %d did not stop within 10 s of SIGINT", in.n)
	}
}

func (in *instance) ready() bool {
	resp, err := http.Get("http://" + in.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// waitReady waits until the instance is ready and counts it live again,
// as a load balancer's health check would.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	testserver.WaitFor(t, 20*time.Second, fmt.Sprintf("instance %d ready", in.n), in.ready)
	in.mu.Lock()
	in.dead = false
	in.mu.Unlock()
}

// holds reports whether the instance holds the lease of name
// (mediaslot_lease_held), false when it does not answer.
func (in *instance) holds(name string) bool {
	resp, err := http.Get("http://" + in.admin + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return strings.Contains(b.String(), fmt.Sprintf("mediaslot_lease_held{lease=%q} 1", name))
}

// holders lists the live instances that hold the lease of name.
func (c *cluster) holders(name string) []*instance {
	var h []*instance
	for _, in := range c.insts {
		if in.alive() && in.holds(name) {
			h = append(h, in)
		}
	}
	return h
}

// other returns a live instance other than the one whose HTTP front
// issued url, the choice turning with i: a load balancer's next pick.
func (c *cluster) other(url string, i int) *instance {
	var live []*instance
	for _, in := range c.insts {
		if in.alive() && !strings.HasPrefix(url, "http://"+in.http+"/") {
			live = append(live, in)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[i%len(live)]
}

// through is url with its host replaced by in's HTTP front.
func through(url string, in *instance) string {
	rest := url[strings.Index(url[len("http://"):], "/")+len("http://"):]
	return "http://" + in.http + rest
}

// accepted is a file whose slot was granted and whose PUT the store accepted.
type accepted struct {
	get  string
	data []byte
}

// clusterLoad runs workers that each request a slot, PUT a file to S3 with it and
// GET it back through another instance than the one that issued the slot,
// over and over, until stop is closed. A step that fails is counted and
// the worker starts over (a client retrying); what was accepted is kept
// in accepted for the final check.
type clusterLoad struct {
	ok, failed atomic.Int64
	busy       atomic.Int64 // slot requests refused with wait/service-unavailable (back-pressure, retried)
	mu         sync.Mutex
	accepted   []accepted
	errs       []string // the first few failures, for the log
}

func (l *clusterLoad) fail(err error) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, err.Error())
	}
	l.mu.Unlock()
}

func (l *clusterLoad) run(ctx context.Context, t *testing.T, c *cluster, cl *client.Client, service jid.JID, worker int) {
	for i := 0; ctx.Err() == nil; i++ {
		data := make([]byte, 1000+(worker*977+i*131)%20000)
		_, _ = rand.Read(data)
		name := fmt.Sprintf("w%d-%d.bin", worker, i)
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		slot, err := cl.RequestSlot(rctx, service, client.File{Name: name, Size: int64(len(data)), ContentType: "application/octet-stream"})
		cancel()
		var se *client.StanzaError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			continue
		case errors.As(err, &se) && se.Type == "wait" && se.Condition == "service-unavailable":
			// all of the instance's slot workers were busy: an answer, not a
			// loss; counted apart
			l.busy.Add(1)
			continue
		default:
			l.fail(fmt.Errorf("slot %s: %w", name, err))
			continue
		}
		if _, err := cl.Upload(ctx, slot, bytes.NewReader(data), int64(len(data)), "application/octet-stream", nil); err != nil {
			if ctx.Err() == nil {
				l.fail(fmt.Errorf("PUT %s: %w", name, err))
			}
			continue
		}
		l.mu.Lock()
		l.accepted = append(l.accepted, accepted{get: slot.GetURL, data: data})
		l.mu.Unlock()
		in := c.other(slot.GetURL, i)
		if in == nil {
			continue
		}
		var got bytes.Buffer
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cl.Download(gctx, through(slot.GetURL, in), &got, int64(len(data)))
		cancel()
		switch {
		case ctx.Err() != nil:
		case err != nil:
			l.fail(fmt.Errorf("GET %s through instance %d: %w", name, in.n, err))
		case !bytes.Equal(got.Bytes(), data):
			t.Errorf("GET %s through instance %d: %d bytes, not the %d uploaded", name, in.n, got.Len(), len(data))
		default:
			l.ok.Add(1)
		}
	}
}

// Three mediaslot processes behind one ejabberd component (ejabberd's
// default balancing: each stanza to any live connection), on one
// PostgreSQL database and one S3 bucket, under a steady load of slot
// requests, PUTs to S3 and GETs through another instance than the one
// that issued the slot. Each instance in turn is killed with SIGKILL, the
// load goes on on the two others, and it is started again. The failures
// of each window are counted and bounded: a request in flight on the
// killed instance may fail (the client retries), and nothing else; every
// upload the store accepted is served afterwards by every instance. The
// upload janitor's lease has one holder at a time and moves to a survivor
// when its holder is the one killed.
func TestClusterFailover(t *testing.T) {
	srv := testserver.Ejabberd(t)
	pg := testserver.StartPostgres(t)
	gw := testserver.VersityGW(t)
	c := startCluster(t, srv, pg.NewDB(t), gw, 3)
	service := jid.MustParse(srv.ComponentJID())

	const workers = 6
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	l := &clusterLoad{}
	for w := range workers {
		user := testserver.Users[w%3]
		cl, err := client.Dial(ctx, client.Options{JID: jid.MustParse(user + "@" + srv.Domain), Password: user, Server: srv.C2SAddr(), Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		wg.Go(func() { l.run(ctx, t, c, cl, service, w) })
	}
	// progress waits until the load made n more round trips (slot, PUT, GET).
	progress := func(what string, n int64) {
		t.Helper()
		from := l.ok.Load()
		testserver.WaitFor(t, 60*time.Second, what, func() bool { return l.ok.Load() >= from+n })
	}
	progress("the load running on three instances", 30)
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d failures before any kill: %q", f, l.errs)
	}

	var takeovers []time.Duration
	for _, victim := range c.insts {
		held := c.holders("upload-janitor")
		if len(held) != 1 {
			t.Fatalf("upload-janitor held by %d instances", len(held))
		}
		before := l.failed.Load()
		killed := time.Now()
		victim.kill(t)
		progress(fmt.Sprintf("the load going on without instance %d", victim.n), 30)
		if held[0] == victim {
			testserver.WaitFor(t, 20*time.Second, "a survivor taking the upload-janitor lease", func() bool {
				return len(c.holders("upload-janitor")) == 1
			})
			takeovers = append(takeovers, time.Since(killed))
		}
		down := l.failed.Load() - before
		victim.start(t)
		victim.waitReady(t)
		progress(fmt.Sprintf("the load with instance %d back", victim.n), 30)
		t.Logf("instance %d killed (lease holder: %v): %d failed requests while it was down (%d workers)",
			victim.n, held[0] == victim, down, workers)
		// one slot request and one GET per worker may be in flight on the killed instance
		if down > 2*workers {
			t.Errorf("instance %d killed: %d failed requests, more than the %d that can be in flight on it: %q", victim.n, down, 2*workers, l.errs)
		}
	}
	if h := c.holders("upload-janitor"); len(h) != 1 {
		t.Errorf("upload-janitor held by %d instances at the end", len(h))
	}
	cancel()
	wg.Wait()
	t.Logf("%d round trips, %d failed requests in all, %d slot requests refused wait/service-unavailable (busy); lease takeovers after a holder's SIGKILL: %v; first failures: %q",
		l.ok.Load(), l.failed.Load(), l.busy.Load(), takeovers, l.errs)

	// nothing accepted is lost: every instance serves every accepted upload
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, u := range l.accepted {
		for _, in := range c.insts {
			resp, err := hc.Get(through(u.get, in))
			if err != nil {
				t.Fatalf("GET %s: %v", u.get, err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(b.Bytes(), u.data) {
				t.Fatalf("accepted upload %s through instance %d: %s, %d bytes of %d", u.get, in.n, resp.Status, b.Len(), len(u.data))
			}
		}
	}
	t.Logf("%d accepted uploads, each served by all three instances", len(l.accepted))
}

// Prosody takes one connection per component and answers a second with a
// conflict: a second mediaslot waits as a hot standby, trying again every
// component.reconnect_max (its default, 4 s, here), and takes over when the
// active one dies: within reconnect_max and a handshake. Measured: the time
// from the active instance's SIGKILL to the standby ready, and to a slot
// answered by it. A relay message
// queued for offline bob before the kill is delivered by the standby when
// bob comes online (the queue is in PostgreSQL), and a file uploaded
// through the dead instance's slot is served by the standby.
func TestProsodyStandby(t *testing.T) {
	srv := testserver.Prosody(t)
	pg := testserver.StartPostgres(t)
	gw := testserver.VersityGW(t)
	c := newCluster(t, srv, pg.NewDB(t), gw, 2, "")
	for _, in := range c.insts {
		b, err := os.ReadFile(in.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in.cfg, []byte(strings.Replace(string(b), `reconnect_max = "1s"`, `reconnect_max = "4s"`, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	active, standby := c.insts[0], c.insts[1]
	active.start(t)
	active.waitReady(t)
	standby.start(t)
	// refused and retrying at its longest interval, as a standby is after a while
	testserver.WaitFor(t, 30*time.Second, "the standby refused by Prosody and retrying every 4 s", func() bool {
		return strings.Contains(standby.log.String(), "retry_in=4s")
	})
	if standby.ready() {
		t.Fatal("the standby is ready while the active instance is connected")
	}

	cl, err := client.Dial(t.Context(), client.Options{JID: jid.MustParse(srv.JID("alice")), Password: "alice", Server: srv.C2SAddr(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	service := jid.MustParse(srv.ComponentJID())
	data := []byte("before the takeover")
	slot, err := cl.RequestSlot(t.Context(), service, client.File{Name: "a.txt", Size: int64(len(data)), ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Upload(t.Context(), slot, bytes.NewReader(data), int64(len(data)), "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	startSlixRelay(t, srv, "send", "carol", relayStanza(t, srv, "standby1", `<body>`+slot.GetURL+`</body>`, "bob"), 1).wait(t)

	killed := time.Now()
	active.kill(t)
	standby.waitReady(t)
	ready := time.Since(killed)
	var answered time.Duration
	testserver.WaitFor(t, 20*time.Second, "a slot answered by the standby", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := cl.RequestSlot(ctx, service, client.File{Name: "b.txt", Size: 1, ContentType: "text/plain"})
		answered = time.Since(killed)
		return err == nil
	})
	t.Logf("takeover after the active instance's SIGKILL (reconnect_max 4s): standby ready after %v, first slot answered after %v",
		ready.Round(time.Millisecond), answered.Round(time.Millisecond))

	var got bytes.Buffer
	if _, err := cl.Download(t.Context(), through(slot.GetURL, standby), &got, 100); err != nil || got.String() != string(data) {
		t.Fatalf("the file uploaded before the takeover, through the standby: %q, %v", got.String(), err)
	}
	if r := startSlixRelay(t, srv, "receive", "bob", "1", 15).wait(t); len(r.Messages) != 1 || !strings.Contains(r.Messages[0], slot.GetURL) {
		t.Errorf("relay message queued before the takeover: %+v", r)
	}
}

// ejabberd 23.01 with domain_balancing by bare source and component_number
// 3, as make demo-cluster runs it, and docs/EJABBERD.md says: each user's
// slot requests always reach the same instance (their order holds); while
// that instance is dead, ejabberd drops them without an answer, and the
// other users are served; once it is back (it takes the free slot), its
// users are served again.
func TestEjabberdBalancingBySource(t *testing.T) {
	srv := testserver.EjabberdBalanced(t, 3)
	pg := testserver.StartPostgres(t)
	gw := testserver.VersityGW(t)
	c := startCluster(t, srv, pg.NewDB(t), gw, 3)
	service := jid.MustParse(srv.ComponentJID())

	clients := map[string]*client.Client{}
	for _, u := range testserver.Users {
		cl, err := client.Dial(t.Context(), client.Options{JID: jid.MustParse(srv.JID(u)), Password: u, Server: srv.C2SAddr(), Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[u] = cl
	}
	// issuer asks for a slot as user and returns the instance that answered
	// (its URLs carry its address), or nil without an answer within 3 s.
	issuer := func(user string) *instance {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		slot, err := clients[user].RequestSlot(ctx, service, client.File{Name: "x.txt", Size: 1, ContentType: "text/plain"})
		if se := (*client.StanzaError)(nil); errors.As(err, &se) {
			t.Fatalf("slot for %s refused: %v", user, err)
		} else if err != nil {
			return nil // no answer within 3 s
		}
		for _, in := range c.insts {
			if strings.HasPrefix(slot.GetURL, "http://"+in.http+"/") {
				return in
			}
		}
		t.Fatalf("slot URL %s of no instance", slot.GetURL)
		return nil
	}
	home := map[string]*instance{}
	for _, u := range testserver.Users {
		for range 5 {
			in := issuer(u)
			if in == nil || (home[u] != nil && in != home[u]) {
				t.Fatalf("%s's slot requests answered by %v, then %v", u, home[u], in)
			}
			home[u] = in
		}
	}
	victim := home["alice"]
	victim.kill(t)
	dropped := 0
	for _, u := range testserver.Users {
		in := issuer(u)
		switch {
		case home[u] == victim && in != nil:
			t.Errorf("%s, whose instance is dead, was answered by instance %d: ejabberd no longer drops them, docs/EJABBERD.md says it does", u, in.n)
		case home[u] == victim:
			dropped++
		case in != home[u]:
			t.Errorf("%s answered by %v instead of instance %d while another instance is dead", u, in, home[u].n)
		}
	}
	victim.start(t)
	victim.waitReady(t)
	back := time.Now()
	testserver.WaitFor(t, 20*time.Second, "alice served again", func() bool { return issuer("alice") != nil })
	t.Logf("while instance %d was dead, %d of %d users got no answer to their slot requests; alice served again %v after it was ready",
		victim.n, dropped, len(testserver.Users), time.Since(back).Round(time.Millisecond))
}
