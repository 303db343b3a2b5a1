package integration

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// Through a real Prosody: with max_file_size as high as it goes and a user
// quota doing the limiting, a slot of math.MaxInt64 bytes requested beside
// a pending one is refused with wait/resource-constraint (the quota sum
// wrapped round and passed, attack1), and a slot that fits is still granted.
func TestQuotaSumOverflowWithRealClient(t *testing.T) {
	srv := testserver.Prosody(t)
	startMediaslot(t, srv, "[upload]\nmax_file_size = 9223372036854775807\ndaily_quota = 0\nuser_quota = 1099511627776\n")
	c := dialClient(t, srv, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	to := jid.MustParse(srv.ComponentJID())
	if _, err := c.RequestSlot(ctx, to, client.File{Name: "a.bin", Size: 1000}); err != nil {
		t.Fatal(err)
	}
	_, err := c.RequestSlot(ctx, to, client.File{Name: "b.bin", Size: math.MaxInt64})
	var se *client.StanzaError
	if !errors.As(err, &se) || !errors.Is(err, client.ErrQuota) || !strings.Contains(se.Text, "Your storage quota") {
		t.Fatalf("a slot of MaxInt64 bytes beside a pending one: %v", err)
	}
	if _, err := c.RequestSlot(ctx, to, client.File{Name: "c.bin", Size: 1 << 30}); err != nil {
		t.Fatalf("a slot that fits, after: %v", err)
	}
}
