package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// A sender past its relay caps gets, through Prosody, an error naming the
// cap for the message that went over, and the recipient gets the others.
func TestRelayCapRefusalReachesTheSender(t *testing.T) {
	forEachBackend(t, testRelayCapRefusalReachesTheSender)
}

func testRelayCapRefusalReachesTheSender(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, "[relay]\nmax_sender_messages = 2\n"+backend)
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	var all strings.Builder
	for i := range 3 {
		fmt.Fprintf(&all, `<message type='chat' id='cap%d' to='%s'><body>capped %d</body><addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='%s'/></addresses></message>`,
			i, srv.ComponentJID(), i, srv.JID("carol"))
	}
	path := filepath.Join(t.TempDir(), "capped.xml")
	if err := os.WriteFile(path, []byte(all.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	sent := startSlixRelay(t, srv, "send", "alice", path, 8).wait(t)
	if len(sent.Errors) != 1 {
		t.Fatalf("want one error, for the third message; got %q", sent.Errors)
	}
	for _, want := range []string{"cap2", "resource-constraint", "wait", srv.JID("alice") + " has as much queued as one sender may (at most 2 messages)"} {
		if !strings.Contains(sent.Errors[0], want) {
			t.Errorf("error lacks %q: %s", want, sent.Errors[0])
		}
	}
	got := startSlixRelay(t, srv, "receive", "carol", "2", 20).wait(t)
	if got.Error != nil || len(got.Messages) != 2 || !strings.Contains(got.Messages[0], "capped 0") || !strings.Contains(got.Messages[1], "capped 1") {
		t.Fatalf("carol got %q, %v; want capped 0 and 1", got.Messages, got.Error)
	}
}
