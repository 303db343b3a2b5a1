package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// jsonDebug is the extra config of the log tests: JSON logs at debug level
// (the harness sets the level) and a token key the test knows.
func jsonDebug(tokenKey string) string {
	return fmt.Sprintf("format = \"json\"\n[upload]\nmax_file_size = 100000\ntoken_key = %q\n", tokenKey)
}

// Every line the real binary logs at debug level, through uploads to disk
// and S3, downloads, rejected PUTs, refused slots, relay messages delivered
// at once and from the queue, a reconnect, an S3 store with a wrong secret
// and a shutdown, is JSON, and none holds a secret it was given (component
// secret, S3 secret key, token key), a slot token (t=) or an S3 signature.
func TestNoSecretsInLogs(t *testing.T) {
	gw := testserver.VersityGW(t)
	srv := testserver.Prosody(t)
	tokenKey := randomHex(t, 24)
	var logs []string
	var tokens []string // what must not appear besides the secrets
	keep := func(rawURL string) {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range u.Query() {
			if k == "t" || strings.EqualFold(k, "X-Amz-Signature") || strings.EqualFold(k, "X-Amz-Security-Token") {
				tokens = append(tokens, v...)
			}
		}
		tokens = append(tokens, u.RawQuery)
	}

	t.Run("disk", func(t *testing.T) {
		m := startMediaslot(t, srv, jsonDebug(tokenKey))
		file, data := writeRandomFile(t, "secret.jpg", 40_000)
		res := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
		checkTransfer(t, res, data, 201)
		keep(res.PutURL)
		// a second PUT (409) and a forged token (403)
		for _, put := range []string{res.PutURL, strings.Replace(res.PutURL, "t=", "t=00", 1)} {
			req, _ := http.NewRequest(http.MethodPut, put, bytes.NewReader(data))
			req.Header.Set("Content-Type", "image/jpeg")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		big, _ := writeRandomFile(t, "big.bin", 150_000)
		_ = slixTry(t, srv, "alice", srv.ComponentJID(), big) // refused: too large

		bob := startSlixRelay(t, srv, "receive", "bob", "1", 20)
		testserver.WaitFor(t, 10*time.Second, "bob online", func() bool { return strings.Contains(m.log.String(), `"from":"bob@localhost/`) })
		startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "m1", thumbnailPayload(res.GetURL), "bob", "carol"), 2).wait(t)
		bob.wait(t)
		startSlixRelay(t, srv, "receive", "carol", "1", 20).wait(t)

		srv.Restart()
		m.waitConnected(2)
		m.stop()
		logs = append(logs, m.log.String())
	})

	t.Run("s3", func(t *testing.T) {
		m := startMediaslot(t, srv, jsonDebug(tokenKey)+gw.StoreConfig("redirect"))
		file, data := writeRandomFile(t, "secret.png", 40_000)
		res := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
		checkTransfer(t, res, data, 200)
		keep(res.PutURL)
		if !strings.Contains(res.PutURL, "X-Amz-Signature=") {
			t.Fatalf("not a presigned URL: %s", res.PutURL)
		}
		// the redirect of a GET carries a presigned URL too
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if resp, err := c.Get(res.GetURL); err == nil {
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); loc != "" {
				keep(loc)
			}
		}
		m.stop()
		logs = append(logs, m.log.String())
	})

	t.Run("s3 wrong secret", func(t *testing.T) {
		wrong := "wrong-" + randomHex(t, 12)
		conf := strings.Replace(gw.StoreConfig("redirect"), fmt.Sprintf("secret_access_key = %q", gw.SecretKey), fmt.Sprintf("secret_access_key = %q", wrong), 1)
		m := startMediaslot(t, srv, jsonDebug(tokenKey)+conf)
		testserver.WaitFor(t, 10*time.Second, "the store check", func() bool { return strings.Contains(m.log.String(), "file store unavailable") })
		m.stop()
		logs = append(logs, m.log.String())
		tokens = append(tokens, wrong)
	})

	all := strings.Join(logs, "\n")
	if !strings.Contains(all, `"level":"DEBUG"`) || !strings.Contains(all, "slot issued") || !strings.Contains(all, "drained queue") {
		t.Fatalf("the logs lack the debug lines the test is about:\n%s", tail(all, 40))
	}
	for i, line := range strings.Split(all, "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Errorf("log line %d is not JSON: %s", i+1, line)
		}
	}
	secrets := map[string]string{
		"component secret": srv.Secret,
		"S3 secret key":    gw.SecretKey,
		"token key":        tokenKey,
		"X-Amz-Signature":  "X-Amz-Signature",
		"x-amz-signature":  "x-amz-signature",
	}
	for i, v := range tokens {
		secrets[fmt.Sprintf("URL credential #%d", i+1)] = v
	}
	for what, v := range secrets {
		if v == "" {
			t.Fatalf("%s is empty", what)
		}
		if i := strings.Index(all, v); i >= 0 {
			t.Errorf("the log holds the %s (%q) at: %s", what, v, all[max(0, i-200):min(len(all), i+len(v)+50)])
		}
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Prosody stopping closes the component's connection (0.12 sends no
// </stream:stream> first): the log says the server closed it, not that the
// stream had an XML syntax error.
func TestLogServerClosedLink(t *testing.T) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, "")
	srv.Restart()
	m.waitConnected(2)
	var down string
	for _, l := range strings.Split(m.log.String(), "\n") {
		if strings.Contains(l, "component link down") {
			down = l
			break
		}
	}
	if !strings.Contains(down, "server closed the connection") || strings.Contains(down, "syntax error") {
		t.Errorf("link down logged as %q", down)
	}
}
