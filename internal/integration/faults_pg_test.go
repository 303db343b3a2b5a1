package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// Faults of PostgreSQL with real processes (issue 15, point 5): the built
// binary, a real Prosody and a private PostgreSQL cluster, which is
// stopped, killed or frozen under load.

// pgMediaslot starts mediaslot on a new database of a private cluster,
// with an admin listener, and waits until it is ready and has the
// server's privileges.
func pgMediaslot(t *testing.T, srv *testserver.Server) (m *mediaslot, pg *testserver.Postgres, admin string) {
	t.Helper()
	pg = testserver.StartPostgres(t)
	admin = freePort(t)
	m = startMediaslot(t, srv, fmt.Sprintf("[admin]\nlisten = %q\n", admin)+postgresData(t, pg))
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	waitReadyz(t, admin, true)
	return m, pg, admin
}

// waitReadyz waits until /readyz says ready (200) or, with ready false,
// not ready (503) because of the database.
func waitReadyz(t *testing.T, admin string, ready bool) {
	t.Helper()
	var code int
	var body string
	testserver.WaitFor(t, 15*time.Second, fmt.Sprintf("/readyz ready=%v", ready), func() bool {
		code, body = adminGet(t, admin, "/readyz")
		if ready {
			return code == http.StatusOK
		}
		return code == http.StatusServiceUnavailable && strings.Contains(body, "database: PostgreSQL does not answer")
	})
}

// requestSlot asks the component for a slot of size bytes, waiting up to
// 30 s for the answer: a slot request is answered, a refusal included,
// within its bound (10 s) even while the database does not answer.
func requestSlot(c *client.Client, srv testserver.XMPP, name string, size int) (client.Slot, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	slot, err := c.RequestSlot(ctx, jid.MustParse(srv.ComponentJID()), client.File{Name: name, Size: int64(size), ContentType: "application/octet-stream"})
	return slot, time.Since(start), err
}

// checkWaitRefusal asserts that err is an XMPP error of type wait, with a
// text, and a condition of conds.
func checkWaitRefusal(t *testing.T, what string, err error, conds ...string) {
	t.Helper()
	var se *client.StanzaError
	if !errors.As(err, &se) {
		t.Errorf("%s: want a stanza error of type wait, got %v", what, err)
		return
	}
	for _, c := range conds {
		if se.Type == "wait" && se.Condition == c && se.Text != "" {
			return
		}
	}
	t.Errorf("%s: %s/%s %q, want wait/%s with a text", what, se.Type, se.Condition, se.Text, strings.Join(conds, " or wait/"))
}

// clusterProcs lists the processes of the cluster whose postmaster is pid:
// the postmaster and its children (backends, checkpointer, ...), which
// call setsid and so are not in its process group.
func clusterProcs(t *testing.T, pid int) []int {
	t.Helper()
	procs := []int{pid}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			procs = append(procs, child)
		}
	}
	return procs
}

// gone reports whether pid has exited (zombies included: they hold no
// shared memory).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) == 0 || fields[0] == "Z"
}

// killCluster kills the postmaster with SIGKILL, as the OOM killer or a
// crash would, and waits until its backends, which notice and leave,
// are gone (until then a new server refuses to start on their shared
// memory). The postmaster is frozen first, so that it forks nothing
// between the listing of its children and its death.
func killCluster(t *testing.T, pg *testserver.Postgres) {
	t.Helper()
	pid := pg.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	procs := clusterProcs(t, pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the killed cluster's processes gone", func() bool {
		for _, p := range procs {
			if !gone(p) {
				return false
			}
		}
		return pg.PID() == 0
	})
}

// PostgreSQL goes away under load, stopped (fast shutdown) or killed
// (SIGKILL of the postmaster), and comes back on the same port and data.
// While it is down: /readyz says not ready, naming the database; slot
// requests are answered wait/service-unavailable (or
// wait/internal-server-error) with a text, never left unanswered; a PUT
// to a slot issued before is answered 503; relay messages come back to
// their sender as wait/service-unavailable errors; disco and ping are
// answered; no stream ends (the component does not reconnect, the
// clients stay logged in). After: the pool reconnects by itself (the same
// mediaslot process), /readyz is ready, slots and uploads work again, the
// file uploaded before is served, and every relay message acknowledged
// before the outage is delivered, in order.
func TestFaultPostgresDown(t *testing.T) {
	for _, c := range []struct {
		name string
		down func(t *testing.T, pg *testserver.Postgres)
	}{
		{"stop", func(t *testing.T, pg *testserver.Postgres) { pg.Stop(t) }},
		{"kill", killCluster},
	} {
		t.Run(c.name, func(t *testing.T) { testFaultPostgresDown(t, c.down) })
	}
}

func testFaultPostgresDown(t *testing.T, down func(*testing.T, *testserver.Postgres)) {
	srv := testserver.Prosody(t)
	m, pg, admin := pgMediaslot(t, srv)
	component := jid.MustParse(srv.ComponentJID())

	alice := dialClient(t, srv, "alice")
	relayTo(t, alice, srv, "carol", "acked", 5)
	before := bytes.Repeat([]byte("before "), 1000)
	kept := mustUpload(t, alice, srv, "before.bin", before)
	issued, _, err := requestSlot(alice, srv, "issued.bin", 100)
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, srv, "bob", "dave")
	testserver.WaitFor(t, 15*time.Second, "the load running", func() bool { return l.since(time.Time{}) >= 10 })
	connected := strings.Count(m.log.String(), "component connected")

	down(t, pg)
	waitReadyz(t, admin, false)
	_, took, err := requestSlot(alice, srv, "down.bin", 100)
	checkWaitRefusal(t, "slot request while PostgreSQL is down", err, "service-unavailable", "internal-server-error")
	t.Logf("slot request refused after %v", took.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, err := alice.Upload(ctx, issued, bytes.NewReader(make([]byte, 100)), 100, "application/octet-stream", nil)
	if code != http.StatusServiceUnavailable {
		t.Errorf("PUT to a slot issued before, while PostgreSQL is down: %d %v, want 503", code, err)
	}
	err = alice.SendMedia(ctx, client.Media{URL: "http://127.0.0.1/file/down/x.jpg", Name: "x.jpg", MediaType: "image/jpeg", Size: 1},
		client.Delivery{To: []jid.JID{jid.MustParse(srv.JID("carol"))}, Relay: component})
	var re *client.RecipientError
	if !errors.As(err, &re) {
		t.Errorf("relay message while PostgreSQL is down: %v, want an error back to the sender", err)
	} else {
		checkWaitRefusal(t, "relay message while PostgreSQL is down", re.Err, "service-unavailable")
	}
	if _, err := alice.Info(ctx, component); err != nil {
		t.Errorf("disco#info while PostgreSQL is down: %v", err)
	}
	if err := alice.Ping(ctx, component); err != nil {
		t.Errorf("ping while PostgreSQL is down: %v", err)
	}

	pg.Start(t)
	upAt := time.Now()
	waitReadyz(t, admin, true)
	testserver.WaitFor(t, 15*time.Second, "a slot issued after the restart", func() bool {
		_, _, err := requestSlot(alice, srv, "after.bin", 100)
		return err == nil
	})
	testserver.WaitFor(t, 15*time.Second, "uploads after the restart", func() bool { return l.since(upAt) >= 5 })
	l.end()
	t.Logf("%d uploads in all, %d failed attempts", l.since(time.Time{}), l.failures)
	if m.cmd.ProcessState != nil {
		t.Fatalf("mediaslot exited: %v", m.cmd.ProcessState)
	}
	if n := strings.Count(m.log.String(), "component connected"); n != connected {
		t.Errorf("the component connected %d times during the outage, want none: a stream ended", n-connected)
	}
	select {
	case <-alice.Done():
		t.Error("alice's stream ended during the outage")
	default:
	}
	if code, got := download(t, kept.GetURL); code != http.StatusOK || !bytes.Equal(got, before) {
		t.Errorf("file uploaded before the outage: %d, %d bytes", code, len(got))
	}
	checkRelayed(t, srv, "acked", 5)
}

// PostgreSQL stops answering (every process of the cluster frozen with
// SIGSTOP: connections stay open, nothing comes back) while a user with
// relay messages queued comes online, whose presence makes the relay ask
// the queue: the read loop does not wait for the database, so disco and
// ping are answered at once; slot requests, more than the pool has
// connections, are each answered with a wait error and a text within the
// handler's bound (10 s); a relay message for the user who came online
// is refused back to its sender within the relay's bounds (a presence
// read of 5 s, the commit under way and its own, 30 s each), not
// delivered ahead of the queued ones; a download is answered 503 within
// the slot store's bound (10 s); /readyz says not ready. Once the cluster
// runs again (SIGCONT), slots are issued again without a restart, and the
// queued messages arrive in order (at her next login: a presence the
// database did not take is not retried).
func TestFaultPostgresStalls(t *testing.T) {
	srv := testserver.Prosody(t)
	m, pg, admin := pgMediaslot(t, srv)
	component := jid.MustParse(srv.ComponentJID())
	alice, bob := dialClient(t, srv, "alice"), dialClient(t, srv, "bob")
	kept := mustUpload(t, alice, srv, "before.bin", []byte("before"))
	relayTo(t, alice, srv, "carol", "queued", 2)

	procs := clusterProcs(t, pg.PID())
	signal := func(sig syscall.Signal) {
		for _, p := range procs {
			_ = syscall.Kill(p, sig)
		}
	}
	var resume sync.Once
	cont := func() { resume.Do(func() { signal(syscall.SIGCONT) }) }
	t.Cleanup(cont) // before mediaslot and the cluster stop
	signal(syscall.SIGSTOP)

	const slots = 6 // the pool has 4 connections on 2 CPUs
	type answer struct {
		took time.Duration
		err  error
	}
	answers := make(chan answer, slots)
	got := make(chan answer, 1)
	go func() {
		start := time.Now()
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(kept.GetURL)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		got <- answer{time.Since(start), err}
	}()
	for i := range slots {
		go func() {
			_, took, err := requestSlot(alice, srv, fmt.Sprintf("stalled-%d.bin", i), 100)
			answers <- answer{took, err}
		}()
	}

	// carol comes online: Prosody hands her presence to the component
	presences := strings.Count(m.log.String(), "presence from="+srv.JID("carol")+"/")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var bodies []string // distinct, in the order they came
	login := func() *client.Client {
		c, err := client.Dial(ctx, client.Options{JID: jid.MustParse(srv.JID("carol")), Password: "carol", Server: srv.C2SAddr(), Insecure: true,
			OnMessage: func(msg client.Message) {
				if !strings.Contains(msg.Body, "/file/") {
					return // the server's own
				}
				mu.Lock()
				if !slices.Contains(bodies, msg.Body) {
					bodies = append(bodies, msg.Body)
				}
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.SendPresence(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	carol := login()
	testserver.WaitFor(t, 10*time.Second, "carol's presence at mediaslot", func() bool {
		return strings.Count(m.log.String(), "presence from="+srv.JID("carol")+"/") > presences
	})
	relayed := make(chan answer, 1)
	go func() {
		start := time.Now()
		err := alice.SendMedia(ctx, client.Media{URL: "http://127.0.0.1/file/stalled/x.jpg", Name: "x.jpg", MediaType: "image/jpeg", Size: 1},
			client.Delivery{To: []jid.JID{jid.MustParse(srv.JID("carol"))}, Relay: component})
		relayed <- answer{time.Since(start), err}
	}()
	// A stalled read loop holds what follows for seconds (the queue's
	// reads give up after 5 s, slot requests after 10 s).
	const prompt = 3 * time.Second
	for i := range 3 {
		qctx, qcancel := context.WithTimeout(ctx, prompt)
		if _, err := bob.Info(qctx, component); err != nil {
			t.Errorf("disco#info %d while PostgreSQL does not answer: %v (within %v)", i, err, prompt)
		}
		if err := bob.Ping(qctx, component); err != nil {
			t.Errorf("ping %d while PostgreSQL does not answer: %v (within %v)", i, err, prompt)
		}
		qcancel()
	}
	waitReadyz(t, admin, false)
	var slowest time.Duration
	for range slots {
		a := <-answers
		checkWaitRefusal(t, "slot request while PostgreSQL does not answer", a.err, "service-unavailable", "internal-server-error")
		slowest = max(slowest, a.took)
	}
	t.Logf("%d slot requests refused, the last after %v", slots, slowest.Round(time.Millisecond))
	if slowest > 15*time.Second {
		t.Errorf("a slot request answered after %v, want within the handler's bound (10 s)", slowest)
	}
	if a := <-got; a.err.Error() != "HTTP 503" || a.took > 15*time.Second {
		t.Errorf("GET of a file while PostgreSQL does not answer: %v after %v, want 503 within the slot store's bound (10 s)", a.err, a.took)
	}
	r := <-relayed
	var re *client.RecipientError
	if !errors.As(r.err, &re) {
		t.Errorf("relay message while PostgreSQL does not answer: %v after %v, want an error back to the sender", r.err, r.took)
	} else {
		checkWaitRefusal(t, "relay message while PostgreSQL does not answer", re.Err, "service-unavailable")
	}
	t.Logf("relay message refused after %v", r.took.Round(time.Millisecond))
	if r.took > 75*time.Second {
		t.Errorf("relay message answered after %v, want within the relay's bounds (a presence read of 5 s, the commit under way and its own of 30 s each)", r.took)
	}

	cont()
	waitReadyz(t, admin, true)
	testserver.WaitFor(t, 15*time.Second, "a slot issued after the database answers again", func() bool {
		_, _, err := requestSlot(alice, srv, "after.bin", 100)
		return err == nil
	})
	if m.cmd.ProcessState != nil {
		t.Fatalf("mediaslot exited: %v", m.cmd.ProcessState)
	}
	// carol's queue drains to her, the refused message not in it: to the
	// session whose presence came during the outage if it was recorded
	// after all, else at her next login
	_ = carol.Close()
	login()
	testserver.WaitFor(t, 30*time.Second, "carol's queued messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	for i, b := range bodies {
		if want := fmt.Sprintf("/file/queued-%d/", i); !strings.Contains(b, want) {
			t.Errorf("carol's message %d: %q, want the one queued as %s (in order, the refused one not among them)", i, b, want)
		}
	}
}
