package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/internal/pgdb/pgdbtest"
	"mediaslot/testserver"
)

// inbox is what a client received, the bodies of the form "tag-N" in the
// order they arrived.
type inbox struct {
	mu     sync.Mutex
	bodies []string
}

func (b *inbox) add(m client.Message) {
	b.mu.Lock()
	b.bodies = append(b.bodies, m.Body)
	b.mu.Unlock()
}

// got returns the numbers of the bodies tagged tag in the order they
// arrived, duplicates included.
func (b *inbox) got(tag string) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ns []int
	for _, body := range b.bodies {
		if rest, ok := strings.CutPrefix(body, tag+"-"); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				ns = append(ns, n)
			}
		}
	}
	return ns
}

// firsts returns ns without repeats, in the order of their first arrival,
// and how many arrivals were repeats.
func firsts(ns []int) (order []int, dups int) {
	seen := map[int]bool{}
	for _, n := range ns {
		if seen[n] {
			dups++
			continue
		}
		seen[n] = true
		order = append(order, n)
	}
	return order, dups
}

// sendNumbered relays "tag-i" from cl to bob through the component.
func sendNumbered(ctx context.Context, cl *client.Client, service, bob jid.JID, tag string, i int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return cl.SendMedia(ctx, client.Media{URL: fmt.Sprintf("%s-%d", tag, i)}, client.Delivery{To: []jid.JID{bob}, Relay: service})
}

// queued counts the relay's entries for recipient.
func queued(t *testing.T, db *pgxpool.Pool, recipient string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM relay_entries WHERE recipient = $1`, recipient).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// online reports whether the relay's shared presences have one of bare's
// resources available, and whether they know any.
func online(t *testing.T, db *pgxpool.Pool, bare string) (on, known bool) {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), `SELECT count(*), coalesce(bool_or(available), false) FROM relay_presence
		WHERE bare = $1 AND resource <> ''`, bare).Scan(&n, &on); err != nil {
		t.Fatal(err)
	}
	return on, n > 0
}

// queueOrder returns the numbers of the messages tagged tag queued for
// recipient, in the queue's order: the order the relay accepted them in,
// which with ejabberd's random balancing need not be the order sent.
func queueOrder(t *testing.T, db *pgxpool.Pool, recipient, tag string) []int {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT s.stanza FROM relay_entries e JOIN relay_stanzas s ON s.id = e.seq
		WHERE e.recipient = $1 ORDER BY e.seq`, recipient)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`>` + tag + `-(\d+)<`)
	var order []int
	for rows.Next() {
		var stanza []byte
		if err := rows.Scan(&stanza); err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(stanza)
		if m == nil {
			t.Fatalf("queued stanza without a %s body: %s", tag, stanza)
		}
		k, _ := strconv.Atoi(string(m[1]))
		order = append(order, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return order
}

// drainer returns the instance whose session holds the drain lock of
// recipient's queue (offline/pgqueue), nil if none does.
func (c *cluster) drainer(t *testing.T, db *pgxpool.Pool, recipient string) *instance {
	t.Helper()
	var app string
	err := db.QueryRow(t.Context(), `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = x'726c7971'::int::oid AND l.objid = hashtext($1)::oid`, recipient).Scan(&app)
	if err != nil {
		return nil
	}
	for _, in := range c.insts {
		if app == fmt.Sprintf("mediaslot-%d", in.n) {
			return in
		}
	}
	return nil
}

// bobOffline has bob known to the relay and offline: ejabberd reports
// presences only as clients send them. The unavailable presence goes once
// the available one is recorded: with random balancing the two may reach
// two instances, and each records its own's arrival, so back to back
// they could be recorded in either order.
func bobOffline(t *testing.T, srv testserver.XMPP, db *pgxpool.Pool) {
	t.Helper()
	bob := dialClient(t, srv, "bob")
	if err := bob.SendPresence(t.Context()); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 20*time.Second, "bob online", func() bool {
		on, _ := online(t, db, srv.JID("bob"))
		return on
	})
	if err := bob.SendUnavailable(t.Context()); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 20*time.Second, "bob known and offline", func() bool {
		on, known := online(t, db, srv.JID("bob"))
		return known && !on
	})
	_ = bob.Close()
}

// bobOnline logs bob in, online, his messages collected in the inbox.
func bobOnline(t *testing.T, srv testserver.XMPP) *inbox {
	t.Helper()
	in := &inbox{}
	bob, err := client.Dial(t.Context(), client.Options{JID: jid.MustParse(srv.JID("bob")), Password: "bob", Server: srv.C2SAddr(), Insecure: true, OnMessage: in.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bob.Close() })
	if err := bob.SendPresence(t.Context()); err != nil {
		t.Fatal(err)
	}
	return in
}

// queueFromCarol has carol relay "tag-0" to "tag-(n-1)" to bob, who is
// offline, waits until all are queued, and returns their queue order.
func queueFromCarol(t *testing.T, srv testserver.XMPP, db *pgxpool.Pool, tag string, n int) []int {
	t.Helper()
	carol := dialClient(t, srv, "carol")
	service, bob := jid.MustParse(srv.ComponentJID()), jid.MustParse(srv.JID("bob"))
	for i := range n {
		if err := sendNumbered(t.Context(), carol, service, bob, tag, i); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	testserver.WaitFor(t, 30*time.Second, "all queued", func() bool { return queued(t, db, bob.String()) == n })
	return queueOrder(t, db, bob.String(), tag)
}

// deliveredInOrder waits until in has every message of want, and checks
// that they first arrived in want's order; it returns the repeats.
func deliveredInOrder(t *testing.T, in *inbox, tag string, want []int, within time.Duration) (dups int) {
	t.Helper()
	testserver.WaitFor(t, within, "every queued message delivered", func() bool {
		order, _ := firsts(in.got(tag))
		return len(order) == len(want)
	})
	order, dups := firsts(in.got(tag))
	if !slices.Equal(order, want) {
		t.Fatalf("delivered in another order than queued:\n%v\nqueued:\n%v", order, want)
	}
	return dups
}

// Three instances behind ejabberd 23.01 (its default balancing: each
// stanza to any live connection). Relay messages queued for offline bob
// are being delivered when the instance draining his queue is killed with
// SIGKILL and stays dead: the survivors deliver every one, in order, the
// repeats bounded. ejabberd forgets the component's XEP-0356 grant when the
// killed connection closes and drops the survivors' privileged deliveries
// without a word (xmpp/grant.go): they must not count as delivered.
func TestClusterRelayKill(t *testing.T) {
	srv := testserver.Ejabberd(t)
	pg := testserver.StartPostgres(t)
	gw := testserver.VersityGW(t)
	dsn := pg.NewDB(t)
	// one sender may fill most of bob's queue (900 of relay.max_messages)
	c := newCluster(t, srv, dsn, gw, 3, "[relay]\nsender_share = 1.0\n")
	c.startAll(t)
	db := pgdbtest.Open(t, dsn)
	bob := srv.JID("bob")
	bobOffline(t, srv, db)
	const n = 900
	want := queueFromCarol(t, srv, db, "q", n)

	in := bobOnline(t, srv)
	var victim *instance
	testserver.WaitFor(t, 30*time.Second, "the drain under way on an instance", func() bool {
		victim = c.drainer(t, db, bob)
		return victim != nil && len(in.got("q")) >= 50
	})
	killed := time.Now()
	victim.kill(t)
	t.Logf("instance %d killed while draining, %d of %d delivered", victim.n, len(in.got("q")), n)
	dups := deliveredInOrder(t, in, "q", want, 60*time.Second)
	t.Logf("all %d delivered in the queue's order %v after the kill, %d repeats", n, time.Since(killed).Round(time.Millisecond), dups)
	// a group of deliveries (offline.ConfirmEvery) per confirmation lost:
	// the dead drain's, and the survivors' while the grant was gone
	if dups > 256 {
		t.Errorf("%d repeats, more than a drain batch (256)", dups)
	}
}

// The in-flight window, with ejabberd balancing by bare source as make
// demo-cluster runs it: carol sends to online bob, one message after
// another, while her instance (ejabberd routes all her stanzas to one
// connection) is killed and started again at once, as a supervisor does.
// Every message the relay acknowledged (the ping after it answered)
// arrives, in order; the test logs how many unacknowledged ones were lost.
func TestClusterRelayInFlight(t *testing.T) {
	srv := testserver.EjabberdBalanced(t, 3)
	pg := testserver.StartPostgres(t)
	gw := testserver.VersityGW(t)
	dsn := pg.NewDB(t)
	c := startCluster(t, srv, dsn, gw, 3)
	db := pgdbtest.Open(t, dsn)
	service := jid.MustParse(srv.ComponentJID())
	bob := jid.MustParse(srv.JID("bob"))
	bobOffline(t, srv, db)
	in := bobOnline(t, srv)
	testserver.WaitFor(t, 20*time.Second, "bob online", func() bool {
		on, _ := online(t, db, bob.String())
		return on
	})
	carol := dialClient(t, srv, "carol")

	const m = 300
	var (
		mu             sync.Mutex
		sent           int
		acked, unacked []int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range m {
			err := sendNumbered(t.Context(), carol, service, bob, "l", i)
			mu.Lock()
			if err == nil {
				acked = append(acked, i)
			} else {
				unacked = append(unacked, i)
			}
			sent++
			mu.Unlock()
		}
	}()
	testserver.WaitFor(t, 60*time.Second, "100 of carol's messages sent", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return sent >= 100
	})
	// carol's instance: the one that delivered her messages at once
	var victim *instance
	for _, in := range c.insts {
		if scrape(t, in.admin)[`mediaslot_relay_delivered_total{path="direct"}`] > 0 {
			victim = in
		}
	}
	if victim == nil {
		t.Fatal("no instance delivered carol's messages to online bob at once")
	}
	victim.kill(t)
	victim.start(t)
	victim.waitReady(t)
	<-done

	isAcked := map[int]bool{}
	for _, i := range acked {
		isAcked[i] = true
	}
	ackedIn := func() []int {
		got, _ := firsts(in.got("l"))
		var a []int
		for _, i := range got {
			if isAcked[i] {
				a = append(a, i)
			}
		}
		return a
	}
	testserver.WaitFor(t, 60*time.Second, "every acknowledged message delivered", func() bool { return len(ackedIn()) == len(acked) })
	if got := ackedIn(); !slices.IsSorted(got) {
		t.Errorf("acknowledged messages delivered out of order: %v", got)
	}
	got, dups := firsts(in.got("l"))
	lost := len(unacked) - (len(got) - len(acked))
	t.Logf("carol's instance %d killed after message %d of %d and started again: %d acknowledged, all delivered in order (%d repeats); "+
		"%d unacknowledged (sent while it was down, or in flight at the kill), of which %d lost", victim.n, 100, m, len(acked), dups, len(unacked), lost)
}

// S3 and PostgreSQL each stopped and started again under a cluster
// (default balancing, two instances). While either is down every instance
// says it is not ready and answers slot requests with an error, as one
// instance does (TestFaultS3Down, TestFaultPostgresDown); once it is back
// each is ready again without a restart. After PostgreSQL's restart each
// lease has one holder again (the sessions that held them died with the
// server), and the siblings' bus listens again: a drain whose
// confirmations ejabberd hands to the other instance half the time
// delivers everything, in the queue's order.
func TestClusterOutages(t *testing.T) {
	srv := testserver.Ejabberd(t)
	pg := testserver.StartPostgres(t)
	gw := testserver.VersityGW(t)
	dsn := pg.NewDB(t)
	c := newCluster(t, srv, dsn, gw, 2, "")
	for _, in := range c.insts {
		b, err := os.ReadFile(in.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in.cfg, []byte(strings.Replace(string(b), "type = \"s3\"\n", "type = \"s3\"\ncheck_interval = \"200ms\"\n", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.startAll(t)
	db := pgdbtest.Open(t, dsn)
	service := jid.MustParse(srv.ComponentJID())
	bobOffline(t, srv, db)
	alice := dialClient(t, srv, "alice")
	slot := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		_, err := alice.RequestSlot(ctx, service, client.File{Name: "x.txt", Size: 1, ContentType: "text/plain"})
		return err
	}

	outage := func(what string, stop, start func()) {
		t.Helper()
		stop()
		for _, in := range c.insts {
			testserver.WaitFor(t, 20*time.Second, fmt.Sprintf("instance %d not ready with %s down", in.n, what), func() bool { return !in.ready() })
		}
		if err := slot(); !errors.As(err, new(*client.StanzaError)) {
			t.Fatalf("slot request while %s is down: %v, want a stanza error", what, err)
		}
		start()
		for _, in := range c.insts {
			in.waitReady(t)
		}
	}
	outage("S3", gw.Stop, gw.Start)
	if err := slot(); err != nil {
		t.Fatalf("slot request after S3 came back: %v", err)
	}
	outage("PostgreSQL", func() { pg.Stop(t) }, func() { pg.Start(t) })
	for _, lease := range []string{"upload-janitor", "relay-purge", "relay-wake"} {
		testserver.WaitFor(t, 30*time.Second, lease+" held by one instance again", func() bool { return len(c.holders(lease)) == 1 })
	}
	if err := slot(); err != nil {
		t.Fatalf("slot request after PostgreSQL came back: %v", err)
	}

	want := queueFromCarol(t, srv, db, "p", 64)
	deliveredInOrder(t, bobOnline(t, srv), "p", want, 60*time.Second)
}
