package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// Flags of BenchmarkOfflineVsRelay (scripts/bench.sh sets them).
var (
	offlineN         = flag.Int("offline.n", 500, "BenchmarkOfflineVsRelay: messages per round and side")
	offlineRounds    = flag.Int("offline.rounds", 2, "BenchmarkOfflineVsRelay: alternating rounds")
	offlineOut       = flag.String("offline.out", "", "BenchmarkOfflineVsRelay: directory for offline-SERVER.json")
	offlineMediaslot = flag.String("offline.mediaslot", "", "BenchmarkOfflineVsRelay: the mediaslot binary (built if empty)")
	offlineServers   = flag.String("offline.servers", "prosody,ejabberd", "BenchmarkOfflineVsRelay: the XMPP servers")
)

// BenchmarkOfflineVsRelay is issue 17's comparison (RunOffline): on a
// private Prosody and ejabberd (the test servers, mod_offline on as their
// packages ship it) with mediaslot attached, the server's own offline
// storage against the relay, the same ~8.7 KB media messages with a BoB
// thumbnail from the same client, in alternating rounds. Run it with
// -benchtime 1x: one iteration is the whole comparison; it reports the
// ratios relay/server and, with -offline.out, writes the results for
// `mediaslot bench report`.
func BenchmarkOfflineVsRelay(b *testing.B) {
	bin := *offlineMediaslot
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "mediaslot")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/mediaslot")
		cmd.Dir = testserver.ModuleRoot(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	for _, name := range strings.Split(*offlineServers, ",") {
		b.Run(name, func(b *testing.B) {
			var srv testserver.XMPP
			var pid func() int
			switch name {
			case "prosody":
				s := testserver.Prosody(b)
				srv, pid = s, s.PID
			case "ejabberd":
				s := testserver.Ejabberd(b)
				srv, pid = s, s.PID
			default:
				b.Fatalf("-offline.servers: unknown server %q", name)
			}
			m := startBenchMediaslot(b, bin, srv)
			account := func(user string) client.Options {
				return client.Options{JID: jid.MustParse(srv.JID(user)), Password: user, Server: srv.C2SAddr(), Insecure: true}
			}
			var res *OfflineResult
			for range b.N {
				var err error
				res, err = RunOffline(context.Background(), OfflineOptions{
					Server: name, Rounds: *offlineRounds,
					Relay: RelayOptions{
						Sender: account("alice"), Recipient: account("bob"), Witness: account("carol"),
						Relay: jid.MustParse(srv.ComponentJID()), N: *offlineN, Senders: 4, Pipeline: 4, Thumbnail: 5600,
						Procs:    []Proc{{Name: name, PID: pid()}, {Name: "mediaslot", PID: m.Process.Pid}, Self()},
						Progress: os.Stderr,
					},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(res.Median(SideRelay, "enqueue_per_s")/res.Median(SideOffline, "enqueue_per_s"), "accept-relay/server")
			b.ReportMetric(res.Median(SideRelay, "flush_s")/res.Median(SideOffline, "flush_s"), "flush-s-relay/server")
			b.ReportMetric(res.PerMessage(SideRelay, name, "flush")/res.PerMessage(SideOffline, name, "flush"), "server-cpu-flush-relay/server")
			if *offlineOut != "" {
				var buf bytes.Buffer
				if err := res.WriteJSON(&buf); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(*offlineOut, "offline-"+name+".json"), buf.Bytes(), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			fmt.Fprint(os.Stderr, res.Markdown())
		})
	}
}

// syncBuffer is a log both the process and the benchmark touch.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBenchMediaslot runs bin attached to srv, with the relay's per-sender
// share lifted (one sender queues every message for one recipient), until
// the benchmark ends; it returns once the server granted the privileges.
func startBenchMediaslot(b *testing.B, bin string, srv testserver.XMPP) *exec.Cmd {
	dir := b.TempDir()
	addr := testserver.FreePorts(b, 1)[0]
	conf := fmt.Sprintf(`[component]
jid = %q
server = %q
secret = %q

[http]
listen = %q
public_url = "http://%s"

[store]
dir = "files"

[data]
dir = "data"

[relay]
sender_share = 1.0
`, srv.ComponentJID(), srv.ComponentAddr(), srv.ComponentSecret(), addr, addr)
	cfg := filepath.Join(dir, "mediaslot.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if b.Failed() {
			b.Logf("mediaslot log:\n%s", log.String())
		}
	})
	testserver.WaitFor(b, 20*time.Second, "mediaslot's privileges", func() bool { return strings.Contains(log.String(), "server privileges") })
	return cmd
}
