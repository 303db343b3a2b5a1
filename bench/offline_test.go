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
	bin := mediaslotBinary(b, *offlineMediaslot)
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

// mediaslotBinary is bin, or if bin is empty cmd/mediaslot built for the
// benchmark.
func mediaslotBinary(b *testing.B, bin string) string {
	if bin != "" {
		return bin
	}
	bin = filepath.Join(b.TempDir(), "mediaslot")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mediaslot")
	cmd.Dir = testserver.ModuleRoot(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBenchMediaslot runs bin attached to srv, with the relay's per-sender
// share lifted (one sender queues every message for one recipient), until
// the benchmark ends; it returns once the server granted the privileges.
func startBenchMediaslot(b *testing.B, bin string, srv testserver.XMPP) *exec.Cmd {
	addr := testserver.FreePorts(b, 1)[0]
	m := launchMediaslot(b, bin, componentConfig(srv, addr)+`
[store]
dir = "files"

[data]
dir = "data"

[relay]
sender_share = 1.0
`)
	testserver.WaitFor(b, 20*time.Second, "mediaslot's privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	return m.cmd
}

// componentConfig is the [component] and [http] sections of a mediaslot
// attached to srv as its component, its HTTP front on addr.
func componentConfig(srv testserver.XMPP, addr string) string {
	return fmt.Sprintf(`[component]
jid = %q
server = %q
secret = %q

[http]
listen = %q
public_url = "http://%s"
`, srv.ComponentJID(), srv.ComponentAddr(), srv.ComponentSecret(), addr, addr)
}

// benchMediaslot is a mediaslot process of a benchmark.
type benchMediaslot struct {
	cmd *exec.Cmd
	log *testserver.LogBuffer
}

// launchMediaslot runs bin with the configuration conf, in a directory of
// its own, until stop or the end of the benchmark.
func launchMediaslot(b *testing.B, bin, conf string) *benchMediaslot {
	dir := b.TempDir()
	cfg := filepath.Join(dir, "mediaslot.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	m := &benchMediaslot{cmd: exec.Command(bin, "serve", "--config", cfg), log: &testserver.LogBuffer{}}
	m.cmd.Dir, m.cmd.Stdout, m.cmd.Stderr = dir, m.log, m.log
	if err := m.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		m.stop(b)
		if b.Failed() {
			b.Logf("mediaslot log:\n%s", m.log.String())
		}
	})
	return m
}

// stop ends the process as an operator would (SIGINT, 10 s to finish);
// a no-op once it ended.
func (m *benchMediaslot) stop(b *testing.B) {
	if m.cmd.ProcessState != nil {
		return
	}
	if !testserver.Stop(m.cmd, os.Interrupt, 10*time.Second) {
		b.Errorf("mediaslot (pid %d) did not stop within 10 s of SIGINT", m.cmd.Process.Pid)
	}
}
