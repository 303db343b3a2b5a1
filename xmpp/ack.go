package xmpp

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A stanza written to the socket is not yet the server's. When mediaslot
// dies with input it has not read (a busy read loop), its kernel resets the
// connection, and the server's kernel may then discard what it had received
// but not yet read: the reason HTTP servers linger before closing. The
// server reads a component stream in order, so its answer to an IQ written
// right after a delivery proves that it read the delivery; only then may a
// queue entry go (see Component.send).

// ackPrefix starts the id of every IQ the component sends to learn that
// the server read what came before it.
const ackPrefix = "ms-ack-"

// ackTimeout bounds the wait for the server's answer. An IQ is always
// answered (RFC 6120), so only a stuck read loop or server gets there; the
// delivery then counts as failed and stays queued.
const ackTimeout = 30 * time.Second

var (
	errNoAck   = errors.New("the server did not confirm a delivery within " + ackTimeout.String())
	errAckLost = errors.New("the link dropped before the server confirmed a delivery")
)

// acks are the deliveries waiting for the server's answer, by IQ id.
type acks struct {
	// self names this instance in its ids ("" alone): ejabberd hands the
	// answer to any of a component's connections, so a sibling that gets
	// one of ours sends it on (see Siblings), and we theirs.
	self    string
	next    atomic.Uint64
	waiting sync.Map // id -> chan error
}

// add registers a waiter; its channel gets nil when the server answers
// the IQ with that id, errAckLost when the link drops first.
func (a *acks) add() (id string, answered <-chan error) {
	id = ackPrefix + a.self + "-" + strconv.FormatUint(a.next.Add(1), 36)
	ch := make(chan error, 1)
	a.waiting.Store(id, ch)
	return id, ch
}

// answered tells the waiter of id that the server answered; it reports
// whether id was one of ours.
func (a *acks) answered(id string) bool {
	ch, ok := a.waiting.LoadAndDelete(id)
	if ok {
		ch.(chan error) <- nil
	}
	return ok
}

func (a *acks) drop(id string) { a.waiting.Delete(id) }

// owner returns the instance whose ack id is, if it is an ack id.
func owner(id string) (instance string, ok bool) {
	rest, ok := strings.CutPrefix(id, ackPrefix)
	if !ok {
		return "", false
	}
	instance, _, ok = strings.Cut(rest, "-")
	return instance, ok
}

// lost fails every waiter: the link dropped, the answers will not come.
func (a *acks) lost() {
	a.waiting.Range(func(id, _ any) bool {
		if ch, ok := a.waiting.LoadAndDelete(id); ok {
			ch.(chan error) <- errAckLost
		}
		return true
	})
}
