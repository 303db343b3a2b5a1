package testserver

import (
	"testing"
	"time"
)

// WaitFor polls cond, which checks a real condition, every 20 ms until it
// holds, and fails the test if timeout passes first: the one way the tests
// wait for something they cannot be told of (a log line, a metric, a port
// that answers).
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
