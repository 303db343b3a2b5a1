package xmpp

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/internal/pgdb"
	"mediaslot/offline"
	"mediaslot/offline/pgqueue"
	"mediaslot/testserver"
)

// privAd1 is ejabberd's advertisement (XEP-0356 v1): presences only as
// clients send them, none on connect.
const privAd1 = `<message from='example.net' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:1'><perm access='message' type='outgoing'/><perm access='presence' type='managed_entity'/></privilege></message>`

// pgQueue opens the relay's queue and presences in a PostgreSQL database,
// one pool per instance.
func pgQueue(t *testing.T, dsn string) *pgqueue.Queue {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	q, err := pgqueue.Open(context.Background(), pool, offline.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); pool.Close() })
	return q
}

// instance is one mediaslot of a cluster: its component on a link of the
// fake server, its relay on the shared database.
type instance struct {
	c      *Component
	cancel context.CancelFunc
	link   *serverLink
	q      *pgqueue.Queue
}

var bodyRE = regexp.MustCompile(`<body[^>]*>([^<]*)</body>`)

// serverSide plays ejabberd's side of the links: it answers the pings that
// confirm deliveries on the link answerOn picks for a ping that came on
// link i (ejabberd hands IQ results to any connection), or not at all if
// it picks -1, and hands the bodies of delivered messages to bodies.
func serverSide(t *testing.T, links []*serverLink, answerOn func(i int) int, bodies chan<- string) {
	for i, l := range links {
		go func() {
			for r := range l.replies {
				if m := bodyRE.FindStringSubmatch(r); m != nil {
					bodies <- m[1]
					continue
				}
				if !strings.Contains(r, `<ping xmlns="urn:xmpp:ping"`) {
					continue
				}
				if on := answerOn(i); on >= 0 {
					links[on].send(`<iq type='result' id='` + attrValueOf(t, r, "id") + `' from='example.net' to='upload.example.net'/>`)
				}
			}
		}()
	}
}

// toTheOther answers on the other of two links.
func toTheOther(i int) int { return 1 - i }

func startCluster(t *testing.T, n int) []*instance {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	srv := newFakeServer(t, "127.0.0.1:0")
	bus := &memBus{comps: map[string]*Component{}}
	var all []*instance
	for i := range n {
		q := pgQueue(t, dsn)
		name := fmt.Sprintf("i%d", i)
		c, cancel, _ := startComponent(t, Options{Server: srv.address, Queue: q, Presence: q, Relay: relayPolicy, Siblings: busEnd{bus, name}})
		bus.mu.Lock()
		bus.comps[name] = c
		bus.mu.Unlock()
		l := srv.nextLink(t)
		l.send(privAd1)
		all = append(all, &instance{c: c, cancel: cancel, link: l, q: q})
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
			if got != body {
				t.Fatalf("round %d: got %q", round, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the message waits in the queue though bob is online (a lost wake-up)", round)
		}
	}
}

// A drain whose instance dies (its delivery never confirmed) is finished
// by a sibling's Wake: every message arrives, in order, the unconfirmed
// one possibly twice.
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
	if got := <-bodies; got != "0" {
		t.Fatalf("first delivery %q", got)
	}
	a.cancel() // a dies waiting for the confirmation of message 0
	testserver.WaitFor(t, 10*time.Second, "b to start draining", func() bool {
		started, err := b.c.Wake(ctx)
		return err == nil && started > 0
	})
	next := 0
	for next < n {
		select {
		case got := <-bodies:
			switch got {
			case fmt.Sprint(next):
				next++
			case fmt.Sprint(next - 1): // the unconfirmed one, again
			default:
				t.Fatalf("got %q, want %d", got, next)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d delivered after the drain's instance died", next, n)
		}
	}
	testserver.WaitFor(t, 10*time.Second, "bob's queue empty", func() bool { return !b.q.Pending("bob@example.net") })
}
