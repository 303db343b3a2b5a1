package relay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mediaslot/offline"
)

// downQueue is a queue whose store cannot be reached: Enqueue fails as
// pgqueue's does when PostgreSQL is down.
type downQueue struct{ offline.Queue }

func (downQueue) Enqueue(context.Context, string, []string, []byte) error {
	return errors.New("pgqueue: failed to connect to `user=mediaslot database=mediaslot`: dial tcp 127.0.0.1:5432: connect: connection refused")
}

// A message the queue cannot store (its database down) is refused with
// wait/service-unavailable and a text for the sender, never dropped
// without a word (issue 15, point 5).
func TestRelayQueueDownRefusesWithText(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.r.q = downQueue{f.q}
	f.in(t, privAd)
	f.in(t, relayMsg("m1", `<body>hello</body>`, "to:carol@example.net"))
	got := f.next(t)
	for _, want := range []string{`type="error" id="m1"`, `to="alice@example.net/phone"`, `type="wait"`, `<service-unavailable`,
		"The relay cannot store messages right now; try again later"} {
		if !strings.Contains(got, want) {
			t.Errorf("refusal lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "connection refused") {
		t.Errorf("the refusal tells the sender the database's address:\n%s", got)
	}
}

// slowPending is a queue whose Pending waits for a database that does not
// answer until release is closed.
type slowPending struct {
	offline.Queue
	asked   chan string
	release chan struct{}
}

func (q slowPending) Pending(recipient string) bool {
	q.asked <- recipient
	<-q.release
	return q.Queue.Pending(recipient)
}

// A presence asks the queue whether the user has messages waiting; with the
// queue in a database slow to answer (presences shared, as with
// PostgreSQL), the read loop that hands the presence over must not wait
// for the answer (issue 15, point 5). The drain runs once it comes.
func TestRelayPresenceDoesNotWaitForQueue(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	f.r.shared = true // presences in memory all the same
	f.in(t, privAd)
	f.in(t, relayMsg("m1", `<body>queued</body>`, "to:carol@example.net"))
	waitQueue(t, f.q, "carol@example.net", true)
	slow := slowPending{Queue: f.q, asked: make(chan string, 1), release: make(chan struct{})}
	f.r.q = slow

	handled := make(chan struct{})
	go func() {
		defer close(handled)
		f.in(t, `<presence from='carol@example.net/phone' to='upload.example.net'/>`)
	}()
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		close(slow.release)
		t.Fatal("the presence held the read loop while the queue's database did not answer")
	}
	if who := <-slow.asked; who != "carol@example.net" {
		t.Fatalf("Pending asked for %s", who)
	}
	f.quiet(t)
	close(slow.release)
	if got := f.next(t); !strings.Contains(got, `to="carol@example.net"`) || !strings.Contains(got, "queued") {
		t.Fatalf("after the answer, want carol's queued message; got %s", got)
	}
}
