package testserver

import (
	"net"
	"strconv"
	"testing"
)

// FreePorts gives distinct ports that can be bound, outside the ephemeral
// range that outgoing connections draw from.
func TestFreePorts(t *testing.T) {
	lo, hi := portRange()
	addrs := FreePorts(t, 20)
	seen := map[string]bool{}
	for _, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if err != nil || host != "127.0.0.1" || seen[p] || port < lo || port >= hi {
			t.Fatalf("%s: not a distinct loopback port in %d-%d (%v)", a, lo, hi-1, err)
		}
		seen[p] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s cannot be bound: %v", a, err)
		}
		l.Close()
	}
	if lo < 1024 || hi > 65536 || hi-lo < 1000 {
		t.Errorf("portRange = %d, %d", lo, hi)
	}
}
