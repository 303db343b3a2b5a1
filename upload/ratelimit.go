package upload

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per user for slot requests: rate tokens a
// second, at most burst saved up.
type limiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	users map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: rate, burst: float64(max(1, burst)), users: map[string]*bucket{}}
}

// take spends a token of owner's; if there is none it returns when there will be.
func (l *limiter) take(owner string, now time.Time) (ok bool, next time.Time) {
	if l == nil {
		return true, time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.users[owner]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.users[owner] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, time.Time{}
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, now.Add(wait)
}

// forget drops users whose bucket has refilled: they cost memory for nothing.
func (l *limiter) forget(now time.Time) {
	if l == nil {
		return
	}
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, b := range l.users {
		if now.Sub(b.last) > full {
			delete(l.users, u)
		}
	}
}
