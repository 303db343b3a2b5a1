// Package lease runs background work once per cluster of mediaslot
// instances sharing one PostgreSQL database: expiry sweeps, the relay
// purge, store probes. Whoever holds a session-level advisory lock runs
// the work; the others keep trying. The lock belongs to one database
// connection, so when its holder dies (SIGKILL, a lost machine with a
// closed socket), PostgreSQL ends the session, the lock is free, and a
// sibling takes it on its next try: no lease table, no clock to trust.
//
// A holder that loses its connection (the database restarted, the network
// cut) notices it on its next check and stops the work before trying
// again, so two instances run the work together at most for one check
// interval. The work must therefore be safe to repeat, as sweeps are.
package lease

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// class is the first key of every lease's advisory lock (the bytes of
// "msls"), so leases never collide with other users of the database's
// advisory locks; the second key is a hash of the lease's name.
const class int32 = 0x6d736c73

// Lease is one piece of cluster-wide background work.
type Lease struct {
	Pool     *pgxpool.Pool
	Name     string        // names the work: instances with the same name share one lease
	Interval time.Duration // how often the holder checks its connection and the others try; 0 means 5 s
	Log      *slog.Logger  // nil for slog.Default()

	held atomic.Bool
}

// Held reports whether this instance holds the lease now.
func (l *Lease) Held() bool { return l.held.Load() }

func (l *Lease) key() int32 {
	h := fnv.New32a()
	h.Write([]byte(l.Name))
	return int32(h.Sum32())
}

func (l *Lease) interval() time.Duration {
	if l.Interval <= 0 {
		return 5 * time.Second
	}
	return l.Interval
}

func (l *Lease) log() *slog.Logger {
	if l.Log == nil {
		return slog.Default()
	}
	return l.Log
}

// Run runs work whenever this instance holds the lease, until ctx ends.
// work gets a context that ends when the lease is lost or ctx ends, and
// must return then; if it returns on its own, it is started again on the
// next interval while the lease is held.
func (l *Lease) Run(ctx context.Context, work func(context.Context)) {
	tick := time.NewTicker(l.interval())
	defer tick.Stop()
	for {
		if err := l.hold(ctx, tick.C, work); err != nil && ctx.Err() == nil {
			l.log().Warn("lease: lost or not taken, trying again", "lease", l.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// hold takes the lock on a connection of its own and, if it got it, runs
// work until ctx ends or a check of the connection fails.
func (l *Lease) hold(ctx context.Context, tick <-chan time.Time, work func(context.Context)) error {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The lock lives with the session: the connection never goes back to
	// the pool, where another user would inherit the lock.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	var got bool
	if err := pc.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", class, l.key()).Scan(&got); err != nil {
		return err
	}
	if !got {
		return nil // someone else holds it: not worth a warning
	}
	l.held.Store(true)
	defer l.held.Store(false)
	l.log().Info("lease: holding", "lease", l.Name)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := func() {
		done = make(chan struct{})
		go func() { defer close(done); work(wctx) }()
	}
	start()
	defer func() { cancel(); <-done }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			pctx, pcancel := context.WithTimeout(ctx, l.interval())
			err := pc.Ping(pctx)
			pcancel()
			if err != nil {
				return err
			}
			select {
			case <-done:
				start() // the work ended early; the lease is still ours
			default:
			}
		}
	}
}
