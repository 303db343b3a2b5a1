// Package siblings carries short notes between the mediaslot instances of
// one cluster through PostgreSQL's LISTEN/NOTIFY, which the instances
// share anyway: no broker to run. What needs it: ejabberd spreads the
// stanzas for a component over all of its connections, IQ results
// included, so the server's answer to the ping one instance sent to
// confirm a delivery may reach a sibling, which passes it on here.
//
// Notes are best effort: one sent while its addressee reconnects is lost
// (NOTIFY keeps nothing for sessions that are not listening), so what
// waits for a note must give up after a while, as a delivery's
// confirmation does (the entry then stays queued and goes again).
package siblings

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// channelPrefix starts the NOTIFY channel of every instance; the rest is
// the instance's name.
const channelPrefix = "mediaslot_"

// retry is the wait before listening again after the connection broke.
const retry = time.Second

// Bus is one instance's end: it has a name of its own, sends notes to
// other instances by name and hands the notes for it to a function.
type Bus struct {
	pool *pgxpool.Pool
	self string
	log  *slog.Logger
}

// New returns the bus of a new instance, named at random: a restarted
// instance is a new one, and notes meant for its former self go nowhere.
func New(pool *pgxpool.Pool, log *slog.Logger) *Bus {
	b := make([]byte, 6)
	rand.Read(b)
	if log == nil {
		log = slog.Default()
	}
	return &Bus{pool: pool, self: hex.EncodeToString(b), log: log}
}

// Self is the instance's name: lowercase hex, safe in an IQ id.
func (b *Bus) Self() string { return b.self }

// Send sends note to the instance named to.
func (b *Bus) Send(ctx context.Context, to, note string) error {
	_, err := b.pool.Exec(ctx, "SELECT pg_notify($1, $2)", channelPrefix+to, note)
	return err
}

// Listen hands each note sent to this instance to receive, from the
// connection it listens on, until ctx ends; it listens again after the
// connection broke (the database restarted, say). ready, if not nil, is
// called each time listening starts.
func (b *Bus) Listen(ctx context.Context, receive func(note string), ready func()) {
	for ctx.Err() == nil {
		err := b.listen(ctx, receive, ready)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("siblings: listening failed, trying again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

func (b *Bus) listen(ctx context.Context, receive func(string), ready func()) error {
	c, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// LISTEN belongs to the session: the connection never goes back to
	// the pool, where another user would get its notifications.
	conn := c.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channelPrefix + b.self}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN: %w", err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		receive(n.Payload)
	}
}
