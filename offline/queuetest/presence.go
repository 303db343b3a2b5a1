package queuetest

import (
	"context"
	"testing"

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
	update := func(t *testing.T, p offline.Presence, bare, full string, available bool) {
		t.Helper()
		if err := p.Update(ctx, bare, full, available); err != nil {
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
