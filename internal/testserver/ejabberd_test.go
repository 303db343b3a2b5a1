package testserver

import (
	"crypto/sha1"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ejabberdComponent does the XEP-0114 handshake as ComponentJID() and
// returns the connection and what arrived up to and including the XEP-0356
// advertisement (urn:xmpp:privilege:1 on ejabberd 23.01).
func ejabberdComponent(t *testing.T, s *EjabberdServer) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Component, ioTimeout)
	if err != nil {
		t.Fatalf("dial component: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	write(t, c, "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='"+s.ComponentJID()+"'>")
	got, err := readUntil(c, "id=", ">")
	m := streamID.FindStringSubmatch(got)
	for err == nil && m == nil {
		var more string
		more, err = readUntil(c, ">")
		got += more
		m = streamID.FindStringSubmatch(got)
	}
	if err != nil {
		t.Fatalf("component stream header: %v; got %q", err, got)
	}
	sum := sha1.Sum([]byte(m[1] + s.Secret))
	write(t, c, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>")
	got, err = readUntil(c, "<handshake/>", "urn:xmpp:privilege:1", "</message>")
	if err != nil {
		t.Fatalf("component handshake/privilege: %v; got %q", err, got)
	}
	return c, got
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
	for _, perm := range []string{"access='message'", "type='outgoing'", "access='presence'", "type='managed_entity'"} {
		if !strings.Contains(strings.ReplaceAll(got, `"`, "'"), perm) {
			t.Errorf("privilege advertisement lacks %s: %q", perm, got)
		}
	}
	// ejabberd closes the stream of a component that omits from (gotcha 6).
	write(t, c, "<iq type='get' id='nofrom' to='"+s.Domain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got, err := readUntil(c, "</stream:stream>"); err != nil || !strings.Contains(got, "improper-addressing") {
		t.Errorf("stanza without from: want improper-addressing and the stream closed, got %q, %v", got, err)
	}

	cl := &http.Client{Timeout: ioTimeout}
	resp, err := cl.Get("http://" + s.HTTP + "/upload/nonexistent/x.txt")
	if err != nil {
		t.Fatalf("http: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown mod_http_upload file: status %d, want 404", resp.StatusCode)
	}
	if err := s.register("alice", "other"); err != nil {
		t.Errorf("registering an existing user again: %v", err)
	}

	pid := s.PID()
	start = time.Now()
	s.Restart()
	t.Logf("restart took %v", time.Since(start))
	if s.PID() == 0 || s.PID() == pid {
		t.Fatalf("Restart: pid %d -> %d", pid, s.PID())
	}
	checkC2S(t, &Server{Domain: s.Domain, Dir: s.Dir, C2S: s.C2S}) // users and password survive
	ejabberdComponent(t, s)

	start = time.Now()
	s.Stop()
	t.Logf("stop took %v", time.Since(start))
	if c, err := net.DialTimeout("tcp", s.C2S, time.Second); err == nil {
		c.Close()
		t.Errorf("c2s port still accepts after Stop")
	}
	s.Stop() // idempotent
}

func TestRenderEjabberdConfig(t *testing.T) {
	got := RenderEjabberdConfig("a @X@ b @Y@@X@ @Z", map[string]string{"X": "1", "Y": "two"})
	if want := "a 1 b two1 @Z"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
