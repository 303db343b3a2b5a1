package xmpp

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/offline/offlinetest"
	"mediaslot/offline/pgqueue"
	"mediaslot/testserver"
)

// privAd1 is ejabberd's advertisement (XEP-0356 v1): presences only as
// clients send them, none on connect.
const privAd1 = `<message from='example.net' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:1'><perm access='message' type='outgoing'/><perm access='presence' type='managed_entity'/></privilege></message>`

// instance is one mediaslot of a cluster: its component on a link of the
// fake server, its relay on the shared database.
type instance struct {
	c      *Component
	cancel context.CancelFunc
	link   *serverLink
	q      *pgqueue.Queue
	srv    *fakeServer
}

var bodyRE = regexp.MustCompile(`<body[^>]*>([^<]*)</body>`)

// serverSide plays ejabberd's side of the links: it answers the pings that
// confirm deliveries, and routes back the probes that follow them (a
// privileged message to the component), on the link answerOn picks for
// one that came on link i (ejabberd hands IQ results and messages to any
// connection), or not at all if it picks -1, and hands the bodies of
// delivered messages to bodies, as "i|body" for a message that came on
// link i.
func serverSide(t *testing.T, links []*serverLink, answerOn func(i int) int, bodies chan<- string) {
	for i := range links {
		go serveLink(t, links, i, answerOn, nil, bodies)
	}
}

// serveLink serves links[i] as serverSide does. With granted, privileged
// messages while it is false are dropped without a word, as ejabberd 23.01
// drops them once it forgot the component's grant.
func serveLink(t *testing.T, links []*serverLink, i int, answerOn func(i int) int, granted *atomic.Bool, bodies chan<- string) {
	for r := range links[i].replies {
		privileged := strings.Contains(r, "<privilege")
		if privileged && granted != nil && !granted.Load() {
			continue
		}
		if m := bodyRE.FindStringSubmatch(r); m != nil {
			bodies <- fmt.Sprintf("%d|%s", i, m[1])
			continue
		}
		on := answerOn(i)
		switch {
		case on < 0:
		case strings.Contains(r, `<ping xmlns="urn:xmpp:ping"`):
			links[on].answer(`<iq type='result' id='` + attrValueOf(t, r, "id") + `' from='example.net' to='upload.example.net'/>`)
		case privileged: // a probe: its inner message goes to the component
			links[on].answer(`<message type='normal' id='` + attrValueOf(t, r, "id") + `' from='example.net' to='upload.example.net'/>`)
		}
	}
}

// toTheOther answers on the other of two links.
func toTheOther(i int) int { return 1 - i }

// startCluster starts n instances on one database, each told the server's
// privileges; startClusterAd tells only the first, as ejabberd hands its
// advertisement to any one connection.
func startCluster(t *testing.T, n int) []*instance { return startClusterAd(t, n, n) }

func startClusterAd(t *testing.T, n, told int) []*instance {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	srv := newFakeServer(t, "127.0.0.1:0")
	bus := &memBus{comps: map[string]*Component{}}
	var all []*instance
	for i := range n {
		q := offlinetest.Postgres(t, dsn, offline.Limits{})
		name := fmt.Sprintf("i%d", i)
		c, cancel, _ := startComponent(t, Options{Server: srv.address, Queue: q, Presence: q, Relay: relayPolicy, Siblings: busEnd{bus, name}})
		bus.mu.Lock()
		bus.comps[name] = c
		bus.mu.Unlock()
		l := srv.nextLink(t)
		if i < told {
			l.send(privAd1)
		}
		all = append(all, &instance{c: c, cancel: cancel, link: l, q: q, srv: srv})
	}
	return all
}

// A message for bob accepted by one instance while bob's presence reaches
// another is delivered at once, whichever wins the race: the instance that
// handles the presence writes it and then reads the queue, the one that
// handles the message writes the queue and then reads presences, so one
// of them always sees the other (no lost wake-up; docs/RELAY.md).
func TestClusterNoLostWakeUp(t *testing.T) {
	in := startCluster(t, 2)
	a, b := in[0], in[1]
	bodies := make(chan string, 64)
	serverSide(t, []*serverLink{a.link, b.link}, toTheOther, bodies)
	ctx := context.Background()
	for round := range 30 {
		a.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net' type='unavailable'/>`)
		testserver.WaitFor(t, 10*time.Second, "bob offline", func() bool {
			on, known, err := b.q.State(ctx, "bob@example.net")
			return err == nil && known && !on
		})
		body := fmt.Sprintf("round %d", round)
		var wg sync.WaitGroup
		wg.Go(func() { b.link.send(relayMsg(fmt.Sprint("m", round), "<body>"+body+"</body>")) })
		wg.Go(func() { a.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`) })
		wg.Wait()
		select {
		case got := <-bodies:
			if _, got, _ = strings.Cut(got, "|"); got != body {
				t.Fatalf("round %d: got %q", round, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the message waits in the queue though bob is online (a lost wake-up)", round)
		}
	}
}

// A drain whose instance dies (its deliveries never confirmed) is finished
// by a sibling's Wake: every message arrives, in order, the unconfirmed
// ones (a group at most) twice.
func TestClusterWakeFinishesADeadDrain(t *testing.T) {
	in := startCluster(t, 2)
	a, b := in[0], in[1]
	bodies := make(chan string, 256)
	// a's pings go unanswered, as a dying instance's; b's on its own link,
	// the one left
	serverSide(t, []*serverLink{a.link, b.link}, func(i int) int {
		if i == 0 {
			return -1
		}
		return i
	}, bodies)
	ctx := context.Background()
	a.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net' type='unavailable'/>`)
	testserver.WaitFor(t, 10*time.Second, "bob offline", func() bool {
		on, known, err := b.q.State(ctx, "bob@example.net")
		return err == nil && known && !on
	})
	const n = 50
	for i := range n {
		if err := b.q.Enqueue(ctx, "alice@example.net/phone", []string{"bob@example.net"}, fmt.Appendf(nil, "<message type='chat' id='q%d'><body>%d</body></message>", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	a.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	if got := <-bodies; got != "0|0" {
		t.Fatalf("first delivery %q", got)
	}
	a.cancel() // a dies before its first group of deliveries was confirmed
	testserver.WaitFor(t, 10*time.Second, "b to start draining", func() bool {
		started, err := b.c.Wake(ctx)
		return err == nil && started > 0
	})
	// What a delivered before it died (a group of ConfirmEvery at most)
	// comes again from b, which delivers everything in order.
	fromA, fromB := []string{"0"}, []string{}
	for len(fromB) < n {
		select {
		case got := <-bodies:
			link, body, _ := strings.Cut(got, "|")
			if link == "0" {
				fromA = append(fromA, body)
			} else {
				fromB = append(fromB, body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("after the drain's instance died, b delivered only %v", fromB)
		}
	}
	for i, body := range fromB {
		if body != fmt.Sprint(i) {
			t.Fatalf("b delivered %v, want 0 to %d in order", fromB, n-1)
		}
	}
	if len(fromA) > offline.ConfirmEvery {
		t.Fatalf("a delivered %d unconfirmed, more than a group (%d)", len(fromA), offline.ConfirmEvery)
	}
	testserver.WaitFor(t, 10*time.Second, "bob's queue empty", func() bool { return !b.q.Pending("bob@example.net") })
}

// An instance that did not get the server's privilege advertisement uses
// the one a sibling recorded: it queues for a recipient known to be
// offline instead of handing the message to the server unprivileged.
func TestClusterSharesTheGrant(t *testing.T) {
	in := startClusterAd(t, 2, 1)
	a, b := in[0], in[1]
	ctx := context.Background()
	testserver.WaitFor(t, 10*time.Second, "a's grant recorded", func() bool {
		g, err := a.q.Grant(ctx)
		return err == nil && g != nil
	})
	a.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net' type='unavailable'/>`)
	testserver.WaitFor(t, 10*time.Second, "bob offline", func() bool {
		on, known, err := b.q.State(ctx, "bob@example.net")
		return err == nil && known && !on
	})
	b.link.send(relayMsg("g", "<body>for later</body>"))
	testserver.WaitFor(t, 10*time.Second, "the message queued by b", func() bool { return b.q.Pending("bob@example.net") })
	bodies := make(chan string, 4)
	serverSide(t, []*serverLink{a.link, b.link}, func(i int) int { return i }, bodies)
	b.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	select {
	case got := <-bodies:
		if _, got, _ = strings.Cut(got, "|"); got != "for later" {
			t.Fatalf("delivered %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not delivered when bob came online")
	}
}

// ejabberd 23.01 forgets a component's grant when any of its connections
// closes, and then drops the privileged deliveries of the others without
// a word while answering their pings. A delivery whose probe does not
// come back stays queued; the instance reconnects, which has the server
// grant the privileges again, and the new link wakes the drain: the
// message arrives.
func TestClusterGrantLostIsNoLoss(t *testing.T) {
	in := startCluster(t, 2)
	a, b := in[0], in[1]
	bodies := make(chan string, 16)
	var granted atomic.Bool
	granted.Store(true)
	links := []*serverLink{a.link, b.link}
	own := func(i int) int { return i }
	for i := range links {
		go serveLink(t, links, i, own, &granted, bodies)
	}
	ctx := context.Background()
	a.link.send(`<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	testserver.WaitFor(t, 10*time.Second, "bob online", func() bool {
		on, known, err := b.q.State(ctx, "bob@example.net")
		return err == nil && known && on
	})

	granted.Store(false) // a third connection of the component closed
	b.link.send(relayMsg("lost", "<body>while the grant was gone</body>"))
	// b finds its probe dropped, probes again after a pause (up to 5 s),
	// and reconnects
	var again *serverLink
	select {
	case again = <-b.srv.links:
	case <-time.After(30 * time.Second):
		t.Fatal("b did not reconnect to have the grant renewed")
	}
	granted.Store(true)
	again.send(privAd1)
	links = []*serverLink{a.link, again}
	go serveLink(t, links, 1, own, &granted, bodies)
	// the new link wakes the drain itself, without the relay-wake lease
	select {
	case got := <-bodies:
		if got != "1|while the grant was gone" {
			t.Fatalf("delivered %q", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the message the server dropped was never delivered again")
	}
	testserver.WaitFor(t, 10*time.Second, "bob's queue empty", func() bool { return !b.q.Pending("bob@example.net") })
}
