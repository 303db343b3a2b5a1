package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// Issue 17.1: the server keeps plain messages to offline users in its own
// mod_offline, as a stock Prosody or ejabberd does, and the relay's messages
// are delivered once, by the relay, never also stored by mod_offline. bob is
// offline (seen going offline, as ejabberd needs); alice sends him one plain
// message (mod_offline must keep it: the check that the server really stores
// offline messages) and three through the relay. bob logs in: the plain one
// arrives from alice's full JID, the relayed ones as from her bare JID, each
// once. He logs out and in again: behind a barrier (a ping after his presence,
// then a plain and a relayed marker from alice, which arrive after anything
// mod_offline or the relay still held), nothing else arrives.
func TestRelayNotStoredByServerOffline(t *testing.T) {
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			var srv testserver.XMPP
			if name == "prosody" {
				srv = testserver.Prosody(t)
			} else {
				srv = testserver.Ejabberd(t)
			}
			relayNotStoredByServerOffline(t, srv)
		})
	}
}

func relayNotStoredByServerOffline(t *testing.T, srv testserver.XMPP) {
	m := startMediaslot(t, srv, "")
	testserver.WaitFor(t, 10*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	presenceBlip(t, srv, "bob")
	testserver.WaitFor(t, 10*time.Second, "bob seen going offline", func() bool {
		return strings.Contains(m.log.String(), "presence from=bob@localhost/") && strings.Contains(m.log.String(), "type=unavailable")
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := dialClient(t, srv, "alice")
	bob, relay := jid.MustParse(srv.JID("bob")), jid.MustParse(srv.ComponentJID())
	media := func(name string) client.Media {
		return client.Media{URL: "http://127.0.0.1/file/x/" + name, Name: name, MediaType: "image/jpeg", Size: 1}
	}
	if err := alice.SendMedia(ctx, media("plain-1.jpg"), client.Delivery{To: []jid.JID{bob}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := alice.SendMedia(ctx, media(fmt.Sprintf("relayed-%d.jpg", i)), client.Delivery{To: []jid.JID{bob}, Relay: relay}); err != nil {
			t.Fatal(err)
		}
	}
	testserver.WaitFor(t, 10*time.Second, "three queued by the relay", func() bool { return strings.Count(m.log.String(), "queued=1") >= 3 })

	// login is one session of bob; it returns what arrived, by file name
	// and sender, once want names have.
	login := func(want ...string) map[string][]string {
		t.Helper()
		var mu sync.Mutex
		got := map[string][]string{}
		c, err := client.Dial(ctx, client.Options{JID: bob, Password: "bob", Server: srv.C2SAddr(), Insecure: true,
			OnMessage: func(msg client.Message) {
				if len(msg.Files) == 0 {
					return
				}
				mu.Lock()
				got[msg.Files[0].Name] = append(got[msg.Files[0].Name], msg.From.String())
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SendPresence(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx, bob.Domain()); err != nil { // the server has handled the presence (and sent what it kept)
			t.Fatal(err)
		}
		marker := fmt.Sprintf("marker-%d", len(want))
		if err := alice.SendMedia(ctx, media(marker+"-plain.jpg"), client.Delivery{To: []jid.JID{bob}}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SendMedia(ctx, media(marker+"-relayed.jpg"), client.Delivery{To: []jid.JID{bob}, Relay: relay}); err != nil {
			t.Fatal(err)
		}
		want = append(want, marker+"-plain.jpg", marker+"-relayed.jpg")
		testserver.WaitFor(t, 20*time.Second, "bob's messages", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, w := range want {
				if len(got[w]) == 0 {
					return false
				}
			}
			return true
		})
		if err := c.SendUnavailable(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}

	first := login("plain-1.jpg", "relayed-0.jpg", "relayed-1.jpg", "relayed-2.jpg")
	for name, from := range first {
		if len(from) != 1 {
			t.Errorf("first login: %s arrived %d times (from %v): stored twice?", name, len(from), from)
		}
		switch relayed := strings.Contains(name, "relayed"); {
		case relayed && from[0] != srv.JID("alice"):
			t.Errorf("first login: %s from %s, want %s (the relay's privileged forward)", name, from[0], srv.JID("alice"))
		case !relayed && !strings.HasPrefix(from[0], srv.JID("alice")+"/"):
			t.Errorf("first login: %s from %s, want alice's full JID (the server's mod_offline)", name, from[0])
		}
	}
	if len(first) != 6 {
		t.Errorf("first login: got %v, want the plain message, three relayed and two markers", first)
	}
	testserver.WaitFor(t, 10*time.Second, "bob seen going offline again", func() bool {
		return strings.Count(m.log.String(), "type=unavailable") >= 2
	})
	if second := login(); len(second) != 2 {
		t.Errorf("second login: got %v, want only the two markers (something was kept twice)", second)
	}
}
