package upload

import (
	"context"
	"sync"
	"time"

	"mediaslot/store"
)

// health remembers the outcome of the last store check, so slot requests
// can be refused at once with a clear error while the store is down instead
// of handing out URLs that fail, and so the cause is logged once per
// outage, not once per request.
type health struct {
	mu      sync.Mutex
	last    error
	checked bool // the store was probed at least once
}

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// checkInterval is how often the store is probed unless
// Options.CheckInterval says otherwise.
const checkInterval = 30 * time.Second

func (s *Service) checkEvery() time.Duration {
	if s.opt.CheckInterval > 0 {
		return s.opt.CheckInterval
	}
	return checkInterval
}

// checkStore probes the store once and logs changes of state.
func (s *Service) checkStore(ctx context.Context) {
	c, ok := s.opt.Store.(store.Checker)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := c.Check(ctx)
	if ctx.Err() != nil && err != nil && ctx.Err() == context.Canceled {
		return // shutting down
	}
	s.health.mu.Lock()
	prev := s.health.last
	s.health.last, s.health.checked = err, true
	s.health.mu.Unlock()
	switch {
	case err != nil && (prev == nil || prev.Error() != err.Error()):
		s.log.Error("file store unavailable; refusing slots until it is back", "err", err)
	case err == nil && prev != nil:
		s.log.Info("file store available again")
	}
}
