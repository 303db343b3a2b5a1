package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// With PostgreSQL, /readyz pings the database: not ready while the ping
// fails or does not answer within dbProbeTimeout, ready again once it
// answers; an answer counts for dbProbeFor, so probes in a burst cost one
// ping (issue 15, point 5).
func TestReadinessDatabase(t *testing.T) {
	now := time.Unix(1000, 0)
	down := errors.New("failed to connect to `user=mediaslot database=mediaslot`: connection refused")
	var answer error
	pings := 0
	p := &dbProbe{now: func() time.Time { return now }, ping: func(ctx context.Context) error {
		pings++
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > dbProbeTimeout {
			t.Errorf("ping without a deadline within %v", dbProbeTimeout)
		}
		return answer
	}}
	ready := readiness(fakeLink{connected: true}, fakeStore{}, listenerState{}, "x", p.err)
	check := func(step string, wantPings int, want string) {
		t.Helper()
		if got := strings.Join(ready(), "\n"); got != want {
			t.Errorf("%s: %q, want %q", step, got, want)
		}
		if pings != wantPings {
			t.Errorf("%s: %d pings, want %d", step, pings, wantPings)
		}
	}
	check("up", 1, "")
	check("asked again at once", 1, "")
	answer = down
	now = now.Add(dbProbeFor)
	check("down", 2, "database: PostgreSQL does not answer: "+down.Error())
	now = now.Add(dbProbeFor / 2)
	check("down, asked again within the second", 2, "database: PostgreSQL does not answer: "+down.Error())
	answer = nil
	now = now.Add(dbProbeFor)
	check("back", 3, "")

	if readiness(fakeLink{connected: true}, fakeStore{}, listenerState{}, "x", (&dataBackend{}).ready())() != nil {
		t.Error("bbolt: not ready without a database check")
	}
}
