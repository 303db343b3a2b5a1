package relay

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/offline"
)

// A sender past its caps gets a wait/resource-constraint error naming the
// cap, and nothing of the refused message is queued.
func TestRelayRefusalNamesTheSendersCap(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{MaxSenderMessages: 2})
	f.in(t, privAd)
	f.in(t, relayMsg("1", `<body>1</body>`, "to:bob@example.net"))
	f.in(t, relayMsg("2", `<body>2</body>`, "to:carol@example.net"))
	f.in(t, relayMsg("3", `<body>3</body>`, "to:dave@example.net", "to:bob@example.net"))
	got := f.next(t)
	for _, want := range []string{`type="error" id="3"`, `to="alice@example.net/phone"`, `type="wait"`, `<resource-constraint`,
		"alice@example.net has as much queued as one sender may (at most 2 messages)"} {
		if !strings.Contains(got, want) {
			t.Errorf("refusal lacks %s:\n%s", want, got)
		}
	}
	if f.q.Pending("dave@example.net") {
		t.Error("dave got part of a refused message")
	}
	if !f.q.Pending("bob@example.net") || !f.q.Pending("carol@example.net") {
		t.Error("the accepted messages are not queued")
	}
}

// A presence of a local user, available or not, marks them seen: their
// entries wait the full TTL, while those of a recipient never seen expire
// after the short one.
func TestRelayPresenceMarksRecipientSeen(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{UnseenTTL: time.Hour})
	f.in(t, privAd)
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net' type='unavailable'/>`)
	f.in(t, relayMsg("1", `<body>1</body>`, "to:bob@example.net", "to:dave@example.net"))
	waitQueue(t, f.q, "bob@example.net", true)
	if n, err := f.q.Purge(context.Background(), time.Now().Add(2*time.Hour)); n != 1 || err != nil {
		t.Fatalf("Purge past the unseen TTL = %d, %v; want dave's entry", n, err)
	}
	if !f.q.Pending("bob@example.net") || f.q.Pending("dave@example.net") {
		t.Fatalf("after the purge: bob pending %v (want true), dave pending %v (want false)", f.q.Pending("bob@example.net"), f.q.Pending("dave@example.net"))
	}
}

// seenRecorder notes the recipients the relay marks seen.
type seenRecorder struct {
	offline.Queue
	mu   sync.Mutex
	seen []string
}

func (q *seenRecorder) MarkSeen(ctx context.Context, recipient string) error {
	q.mu.Lock()
	q.seen = append(q.seen, recipient)
	q.mu.Unlock()
	return q.Queue.MarkSeen(ctx, recipient)
}

// Presences from other domains do not grow the seen set: nobody there can
// be queued for.
func TestRelayMarksOnlyRecipientDomainsSeen(t *testing.T) {
	f := newRelayFixture(t, offline.Limits{})
	rec := &seenRecorder{Queue: f.q}
	f.r.q = rec
	f.in(t, privAd)
	f.in(t, `<presence from='eve@elsewhere.example/x' to='upload.example.net'/>`)
	f.in(t, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	f.in(t, `<presence from='example.net' to='upload.example.net'/>`)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.Equal(rec.seen, []string{"bob@example.net"}) {
		t.Fatalf("marked seen: %q; want only bob@example.net", rec.seen)
	}
}
