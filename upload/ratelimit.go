package upload

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter bounds slot requests per user with a rate.Limiter each: rate
// tokens a second, at most burst saved up. Users whose bucket is full
// again are forgotten by the janitor's sweep, so the map holds only those
// who asked recently.
type limiter struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex
	users map[string]*rate.Limiter
}

func newLimiter(r float64, burst int) *limiter {
	if r <= 0 {
		return nil
	}
	return &limiter{rate: rate.Limit(r), burst: max(1, burst), users: map[string]*rate.Limiter{}}
}

// take spends a token of owner's; if there is none it returns when there
// will be, and spends nothing: a refused request does not push the
// user's next chance further away.
func (l *limiter) take(owner string, now time.Time) (ok bool, next time.Time) {
	if l == nil {
		return true, time.Time{}
	}
	// Held across the reservation, so forget cannot drop a limiter that
	// is being spent.
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[owner]
	if u == nil {
		u = rate.NewLimiter(l.rate, l.burst)
		l.users[owner] = u
	}
	r := u.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, now.Add(d)
	}
	return true, time.Time{}
}

// forget drops users whose bucket has refilled: they cost memory for nothing.
func (l *limiter) forget(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, lim := range l.users {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.users, u)
		}
	}
}
