package testserver

import (
	"net"
	"strings"
	"testing"
	"time"
)

// ejabberdComponent does the XEP-0114 handshake as ComponentJID() and
// returns the connection and what arrived up to and including the XEP-0356
// advertisement (urn:xmpp:privilege:1 on ejabberd 23.01).
func ejabberdComponent(t *testing.T, s *EjabberdServer) (net.Conn, string) {
	t.Helper()
	return componentHandshake(t, s.Component, s.ComponentJID(), s.Secret, "urn:xmpp:privilege:1")
}

func TestEjabberd(t *testing.T) {
	start := time.Now()
	s := Ejabberd(t)
	t.Logf("ejabberd up with %d users after %v: pid %d c2s=%s component=%s http=%s dir=%s",
		len(Users), time.Since(start), s.PID(), s.C2S, s.Component, s.HTTP, s.Dir)

	// STARTTLS with the generated certificate, SASL PLAIN as alice: the
	// check of the Prosody harness works as it is (same cert layout).
	checkC2S(t, &Server{Domain: s.Domain, Dir: s.Dir, C2S: s.C2S})

	c, got := ejabberdComponent(t, s)
	checkPrivileges(t, got)
	// ejabberd closes the stream of a component that omits from (gotcha 6).
	write(t, c, "<iq type='get' id='nofrom' to='"+s.Domain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got, err := readUntil(c, "</stream:stream>"); err != nil || !strings.Contains(got, "improper-addressing") {
		t.Errorf("stanza without from: want improper-addressing and the stream closed, got %q, %v", got, err)
	}

	checkNotFound(t, "http://"+s.HTTP+"/upload/nonexistent/x.txt", "mod_http_upload file")
	if err := s.register("alice", "other"); err != nil {
		t.Errorf("registering an existing user again: %v", err)
	}

	checkRestart(t, s)
	checkC2S(t, &Server{Domain: s.Domain, Dir: s.Dir, C2S: s.C2S}) // users and password survive
	ejabberdComponent(t, s)

	checkStop(t, s)
}

func TestRenderEjabberdConfig(t *testing.T) {
	got := RenderEjabberdConfig("a @X@ b @Y@@X@ @Z", map[string]string{"X": "1", "Y": "two"})
	if want := "a 1 b two1 @Z"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
