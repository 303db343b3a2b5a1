package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mediaslot/testserver"
)

// serveLeases are the leases of a serve with the relay on, each exported
// as mediaslot_lease_held{lease=NAME}.
var serveLeases = []string{"upload-janitor", "relay-purge"}

// Two serve instances on one PostgreSQL database run the upload janitor
// and the relay purge once between them: each lease is held by exactly one
// of them, and when its holder stops, the other takes it over.
func TestServeLeasePerCluster(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dsn := pg.NewDB(t)
	defer func(d time.Duration) { leaseInterval = d }(leaseInterval)
	leaseInterval = 100 * time.Millisecond

	type instance struct {
		admin string
		stop  func() int // ends serve and returns its exit code, once
		log   *testserver.LogBuffer
	}
	start := func(name string) *instance {
		dir := t.TempDir()
		in := &instance{admin: testserver.FreePorts(t, 1)[0], log: &testserver.LogBuffer{}}
		http := testserver.FreePorts(t, 1)[0]
		conf := fmt.Sprintf(`[component]
jid = "upload.example.net"
server = %q
secret = "s"
[http]
listen = %q
public_url = "http://%s"
[upload]
token_key = "0123456789abcdef0123456789abcdef"
[store]
dir = %q
[data]
dir = %q
backend = "postgres"
dsn = %q
[admin]
listen = %q
`, testserver.FreePorts(t, 1)[0], http, http, filepath.Join(dir, "files"), filepath.Join(dir, "data"), dsn, in.admin)
		cfg := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{"serve", "--config", cfg}, in.log, in.log) }()
		in.stop = sync.OnceValue(func() int { cancel(); return <-done })
		t.Cleanup(func() {
			in.stop()
			if t.Failed() {
				t.Logf("%s:\n%s", name, in.log.String())
			}
		})
		return in
	}
	// held reads which leases an instance holds from its metrics; an
	// instance that is not up yet (or stopped) holds none.
	held := func(in *instance) map[string]bool {
		resp, err := http.Get("http://" + in.admin + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		h := map[string]bool{}
		for _, l := range serveLeases {
			if strings.Contains(string(b), fmt.Sprintf("mediaslot_lease_held{lease=%q} 1", l)) {
				h[l] = true
			}
		}
		return h
	}
	a, b := start("a"), start("b")
	var holder map[string]*instance
	// each lease has exactly one holder, and keeps it over several checks
	// of the holder's connection (no flapping between the two)
	stable := 0
	testserver.WaitFor(t, 20*time.Second, "each lease held by exactly one instance", func() bool {
		ha, hb := held(a), held(b)
		now := map[string]*instance{}
		for _, l := range serveLeases {
			if ha[l] && hb[l] {
				t.Fatalf("both instances hold %s", l)
			}
			switch {
			case ha[l]:
				now[l] = a
			case hb[l]:
				now[l] = b
			}
		}
		if len(now) != len(serveLeases) || (holder != nil && (now["upload-janitor"] != holder["upload-janitor"] || now["relay-purge"] != holder["relay-purge"])) {
			holder, stable = now, 0
			return false
		}
		holder = now
		stable++
		return stable >= 5
	})
	if !strings.Contains(holder["upload-janitor"].log.String(), "lease: holding") {
		t.Error("the holder did not log that it holds the lease")
	}

	// the janitor's holder stops: the other takes over everything it held
	gone := holder["upload-janitor"]
	other := a
	if gone == a {
		other = b
	}
	if code := gone.stop(); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
	testserver.WaitFor(t, 20*time.Second, "the survivor holds every lease", func() bool {
		h := held(other)
		return h["upload-janitor"] && h["relay-purge"]
	})
}
