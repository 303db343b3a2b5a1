package queuetest

import (
	"context"
	"testing"
	"time"

	"mediaslot/offline"
)

// TestPresence is the conformance suite of offline.Presence. newPresence
// returns an empty store.
func TestPresence(t *testing.T, newPresence func(t *testing.T) offline.Presence) {
	ctx := context.Background()
	state := func(t *testing.T, p offline.Presence, bare string, wantOnline, wantKnown bool) {
		t.Helper()
		online, known, err := p.State(ctx, bare)
		if err != nil {
			t.Fatal(err)
		}
		if online != wantOnline || known != wantKnown {
			t.Fatalf("State(%s) = online %v known %v, want %v %v", bare, online, known, wantOnline, wantKnown)
		}
	}
	clock := time.Now()
	update := func(t *testing.T, p offline.Presence, bare, full string, available bool) {
		t.Helper()
		clock = clock.Add(time.Millisecond)
		if err := p.Update(ctx, bare, full, available, clock); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("resources", func(t *testing.T) {
		p := newPresence(t)
		state(t, p, "bob@example.net", false, false)
		update(t, p, "bob@example.net", "bob@example.net/phone", true)
		update(t, p, "bob@example.net", "bob@example.net/laptop", true)
		update(t, p, "bob@example.net", "bob@example.net/phone", true) // again: no change
		state(t, p, "bob@example.net", true, true)
		update(t, p, "bob@example.net", "bob@example.net/phone", false)
		state(t, p, "bob@example.net", true, true) // the laptop is still there
		update(t, p, "bob@example.net", "bob@example.net/laptop", false)
		state(t, p, "bob@example.net", false, true)
		state(t, p, "carol@example.net", false, false)
		// an unavailable presence first still makes the user known
		update(t, p, "dave@example.net", "dave@example.net/x", false)
		state(t, p, "dave@example.net", false, true)
	})
	t.Run("out of order", func(t *testing.T) {
		// two instances record one user's presences in the other order
		// than they arrived: the later arrival wins
		p := newPresence(t)
		t0 := time.Now()
		if err := p.Update(ctx, "bob@example.net", "bob@example.net/phone", false, t0.Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := p.Update(ctx, "bob@example.net", "bob@example.net/phone", true, t0); err != nil {
			t.Fatal(err)
		}
		state(t, p, "bob@example.net", false, true)
		if err := p.Update(ctx, "bob@example.net", "bob@example.net/phone", true, t0.Add(2*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		state(t, p, "bob@example.net", true, true)
		// an unavailable resource is forgotten after TombstoneAge
		later := t0.Add(offline.TombstoneAge + time.Second)
		if err := p.Update(ctx, "carol@example.net", "carol@example.net/a", false, t0); err != nil {
			t.Fatal(err)
		}
		if err := p.Update(ctx, "carol@example.net", "carol@example.net/b", true, later); err != nil {
			t.Fatal(err)
		}
		if err := p.Update(ctx, "carol@example.net", "carol@example.net/a", true, t0.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := p.Update(ctx, "carol@example.net", "carol@example.net/b", false, later.Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		// /a's tombstone was gone when its stale available came, which
		// then counts: the bound is TombstoneAge
		state(t, p, "carol@example.net", true, true)
	})
	t.Run("grant", func(t *testing.T) {
		p := newPresence(t)
		if g, err := p.Grant(ctx); err != nil || g != nil {
			t.Fatalf("Grant of a new store = %q, %v", g, err)
		}
		for _, g := range []string{"example.net urn:xmpp:privilege:1 true true", "example.net urn:xmpp:privilege:2 true false"} {
			if err := p.SetGrant(ctx, []byte(g)); err != nil {
				t.Fatal(err)
			}
			if got, err := p.Grant(ctx); err != nil || string(got) != g {
				t.Fatalf("Grant = %q, %v; want %q", got, err, g)
			}
		}
	})
	t.Run("reset", func(t *testing.T) {
		p := newPresence(t)
		update(t, p, "bob@example.net", "bob@example.net/phone", true)
		if err := p.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		state(t, p, "bob@example.net", false, false)
		update(t, p, "bob@example.net", "bob@example.net/phone", true)
		state(t, p, "bob@example.net", true, true)
	})
}
