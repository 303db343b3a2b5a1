package upload

import (
	"testing"
	"time"
)

// A refused request spends nothing, so asking again before the stamp gets
// the same stamp; the janitor's forget drops a user only once their
// bucket is full again.
func TestLimiterRefusalAndForget(t *testing.T) {
	l := newLimiter(1, 2) // 1 a second, 2 at once
	t0 := time.Unix(1764057600, 0)
	for i := range 2 {
		if ok, _ := l.take("alice@example.net", t0); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	for range 3 {
		if ok, next := l.take("alice@example.net", t0); ok || !next.Equal(t0.Add(time.Second)) {
			t.Fatalf("over the rate: ok %v, retry at %v, want %v", ok, next, t0.Add(time.Second))
		}
	}
	if ok, next := l.take("alice@example.net", t0.Add(300*time.Millisecond)); ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("asked again 300 ms later: ok %v, retry at %v, want %v", ok, next, t0.Add(time.Second))
	}
	l.forget(t0.Add(time.Second))
	if len(l.users) != 1 {
		t.Fatalf("forgot a user whose bucket is not full: %d left", len(l.users))
	}
	l.forget(t0.Add(2 * time.Second))
	if len(l.users) != 0 {
		t.Fatalf("kept a user whose bucket is full: %d left", len(l.users))
	}
	if ok, _ := l.take("alice@example.net", t0.Add(2*time.Second)); !ok {
		t.Fatal("refused after being forgotten")
	}
	none := newLimiter(0, 5)
	if ok, _ := none.take("alice@example.net", t0); !ok {
		t.Fatal("rate 0 limits")
	}
	none.forget(t0)
}
