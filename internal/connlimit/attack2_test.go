package connlimit

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// An IPv4 client seen through a dual-stack socket (::ffff:a.b.c.d) counts
// against its IPv4 address, not a /64 of its own; IPv6 addresses of one
// /64, zones and all, share one key.
func TestAddrKeyAliases(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"[::ffff:192.0.2.7]:1000", "192.0.2.7:2000"},
		{"[::ffff:c000:207]:1000", "192.0.2.7:2000"},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:2"},
		{"[fe80::1%eth0]:1", "[fe80::2%eth1]:2"},
	} {
		ka, _ := net.ResolveTCPAddr("tcp", c.a)
		kb, _ := net.ResolveTCPAddr("tcp", c.b)
		if x, y := addrKey(ka), addrKey(kb); x != y || !x.IsValid() {
			t.Errorf("%s -> %v, %s -> %v: want one valid key", c.a, x, c.b, y)
		}
	}
	a, _ := net.ResolveTCPAddr("tcp", "[2001:db8:1:3::1]:1")
	b, _ := net.ResolveTCPAddr("tcp", "[2001:db8:1:2::1]:1")
	if addrKey(a) == addrKey(b) {
		t.Error("two /64s share a key")
	}
}

// Refused connections that send nothing and read nothing cannot hold up
// Accept nor stay open: each is answered or closed within a second or so,
// and another address is served meanwhile.
func TestRefusalsThatReadNothing(t *testing.T) {
	l, _ := server(t, Limits{PerAddr: 1, Answer503: true})
	held := dial(t, l, "127.0.0.1")
	if code, _ := get(t, held); code != 200 {
		t.Fatalf("first connection: %d", code)
	}
	var refused []net.Conn
	for range 3 * maxAnswering {
		refused = append(refused, dial(t, l, "127.0.0.1"))
	}
	if code, _ := get(t, dial(t, l, "127.0.0.2")); code != 200 {
		t.Fatalf("another address during the refusals: %d", code)
	}
	for i, c := range refused {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("refused connection %d still open: %v", i, err)
		}
	}
}
