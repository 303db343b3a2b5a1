package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/internal/pgdb/pgdbtest"
	"mediaslot/testserver"
)

// Flags of BenchmarkCluster (scripts/bench.sh sets them).
var (
	clusterCounts    = flag.String("cluster.instances", "1,3", "BenchmarkCluster: the instance counts compared")
	clusterRounds    = flag.Int("cluster.rounds", 2, "BenchmarkCluster: rounds; each measures every instance count, in turn first")
	clusterSlots     = flag.Int("cluster.slots", 4000, "BenchmarkCluster: slot requests per phase")
	clusterSessions  = flag.Int("cluster.sessions", 8, "BenchmarkCluster: client sessions asking for slots (alice, carol and dave in turn)")
	clusterInflight  = flag.Int("cluster.inflight", 32, "BenchmarkCluster: slot requests in flight, over all the sessions")
	clusterN         = flag.Int("cluster.n", 1500, "BenchmarkCluster: relay messages per phase")
	clusterIdle      = flag.Duration("cluster.idle", 5*time.Second, "BenchmarkCluster: how long each phase watches the processes idle (the leases' interval is 5 s)")
	clusterOut       = flag.String("cluster.out", "", "BenchmarkCluster: directory for cluster.json")
	clusterMediaslot = flag.String("cluster.mediaslot", "", "BenchmarkCluster: the mediaslot binary (built if empty)")
)

// BenchmarkCluster measures mediaslot as several instances of one
// component (issue 16) as `make demo-cluster` runs them, on one private
// ejabberd 23.01, one PostgreSQL cluster and one versitygw: the instances
// keep their records and the relay queue in PostgreSQL (data.backend =
// "postgres") and their files in S3, and share the token key; each
// instance's per-user slot rate is off (each would keep its own). ejabberd
// keeps its default balancing, each stanza to a random connection of the
// component: with bare_source a user's stanzas all reach one instance, and
// a benchmark's few users would load the instances unevenly.
//
// Each phase starts that many instances on a fresh database, watches them
// idle, asks for slots from several sessions at once, then relays messages to offline
// bob and flushes them when he logs in (RunClusterPhase), watching every
// instance, ejabberd's VM, PostgreSQL (the postmaster and its backends)
// and this process, and stops the instances. Each round runs every
// instance count, the order turning from round to round. Run it with
// -benchtime 1x: one iteration is the whole comparison; with -cluster.out
// it writes cluster.json for `mediaslot bench report`.
func BenchmarkCluster(b *testing.B) {
	var counts []int
	for _, s := range strings.Split(*clusterCounts, ",") {
		k, err := strconv.Atoi(s)
		if err != nil || k < 1 {
			b.Fatalf("-cluster.instances %q: a list of instance counts", *clusterCounts)
		}
		counts = append(counts, k)
	}
	bin := mediaslotBinary(b, *clusterMediaslot)
	srv := testserver.Ejabberd(b)
	pg := testserver.StartPostgres(b)
	gw := testserver.VersityGW(b)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cl := &benchCluster{bin: bin, srv: srv, pg: pg, gw: gw, key: hex.EncodeToString(key)}

	account := func(user string) client.Options {
		return client.Options{JID: jid.MustParse(srv.JID(user)), Password: user, Server: srv.C2SAddr(), Insecure: true}
	}
	ctx := context.Background()
	users := []string{"alice", "carol", "dave"} // not bob: he is the relay's offline recipient
	var sessions []*client.Client
	for i := range *clusterSessions {
		c, err := client.Dial(ctx, account(users[i%len(users)]))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		sessions = append(sessions, c)
	}
	opt := ClusterPhaseOptions{
		Sessions: sessions, Service: jid.MustParse(srv.ComponentJID()), Slots: *clusterSlots, Inflight: *clusterInflight,
		Relay: RelayOptions{
			Sender: account("alice"), Recipient: account("bob"), Witness: account("carol"),
			Relay: jid.MustParse(srv.ComponentJID()), N: *clusterN, Senders: 4, Pipeline: 4, Thumbnail: 5600,
		},
		Progress: os.Stderr, Idle: *clusterIdle,
	}

	var res *ClusterResult
	for range b.N {
		res = &ClusterResult{
			Started: time.Now().UTC(), Server: "ejabberd " + ejabberdVersion(), Balancing: "random",
			Sessions: len(sessions), Inflight: opt.Inflight, Slots: opt.Slots, N: opt.Relay.N,
			Senders: opt.Relay.Senders, Pipeline: opt.Relay.Pipeline, Rounds: *clusterRounds,
		}
		for round := range *clusterRounds {
			order := slices.Clone(counts)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, k := range order {
				fmt.Fprintf(os.Stderr, "bench cluster: round %d/%d: %d instance(s)\n", round+1, *clusterRounds, k)
				run := cl.phase(b, k, opt)
				run.Round = round + 1
				res.StanzaBytes = run.Relay.StanzaBytes
				res.Runs = append(res.Runs, run)
			}
		}
	}
	first, last := counts[0], counts[len(counts)-1]
	b.ReportMetric(res.Rate(first, PhaseSlots), fmt.Sprintf("slots/s-%d", first))
	b.ReportMetric(res.Rate(last, PhaseSlots), fmt.Sprintf("slots/s-%d", last))
	b.ReportMetric(res.Rate(first, PhaseEnqueue), fmt.Sprintf("accepted/s-%d", first))
	b.ReportMetric(res.Rate(last, PhaseEnqueue), fmt.Sprintf("accepted/s-%d", last))
	b.ReportMetric(res.PerOp(last, groupPostgres, PhaseSlots), fmt.Sprintf("db-cpu-µs/slot-%d", last))
	b.ReportMetric(res.PerOp(last, groupPostgres, PhaseEnqueue)+res.PerOp(last, groupPostgres, PhaseFlush), fmt.Sprintf("db-cpu-µs/msg-%d", last))
	if *clusterOut != "" {
		var buf bytes.Buffer
		if err := res.WriteJSON(&buf); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*clusterOut, fileCluster), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Fprint(os.Stderr, res.Markdown())
}

// benchCluster is what the phases of BenchmarkCluster share: the servers
// and the token key.
type benchCluster struct {
	bin string
	srv *testserver.EjabberdServer
	pg  *testserver.Postgres
	gw  *testserver.S3
	key string
}

// phase starts k instances on a fresh database, waits until each is
// ready and the relay knows bob offline, measures, and stops them.
func (c *benchCluster) phase(b *testing.B, k int, opt ClusterPhaseOptions) *ClusterRun {
	dsn := c.pg.NewDB(b)
	var insts []*benchMediaslot
	var admins []string
	for i := range k {
		ports := testserver.FreePorts(b, 2)
		addr, admin := ports[0], ports[1]
		insts = append(insts, launchMediaslot(b, c.bin, componentConfig(c.srv, addr)+c.config(dsn, i+1, admin, opt.Relay.N)))
		admins = append(admins, admin)
	}
	for i, admin := range admins {
		testserver.WaitFor(b, 30*time.Second, fmt.Sprintf("instance %d ready", i+1), func() bool { return ready(admin) })
	}
	// The relay must know bob offline (ejabberd reports presences only as
	// they happen), or it counts his messages as for an unknown account.
	if err := presenceBlip(context.Background(), opt.Relay.Recipient); err != nil {
		b.Fatal(err)
	}
	db := pgdbtest.Open(b, dsn)
	testserver.WaitFor(b, 20*time.Second, "bob known and offline", func() bool {
		var known, on bool
		err := db.QueryRow(context.Background(), `SELECT count(*) > 0, coalesce(bool_or(available), false) FROM relay_presence
			WHERE bare = $1 AND resource <> ''`, opt.Relay.Recipient.JID.Bare().String()).Scan(&known, &on)
		return err == nil && known && !on
	})
	db.Close()

	opt.Procs = []Proc{{Name: groupEjabberd, PID: c.srv.PID()}, {Name: groupPostgres, PID: c.pg.PID(), Children: true}, Self()}
	for i, m := range insts {
		opt.Procs = append(opt.Procs, Proc{Name: fmt.Sprintf("%s-%d", groupMediaslot, i+1), PID: m.cmd.Process.Pid})
	}
	run, err := RunClusterPhase(context.Background(), opt)
	if err != nil {
		b.Fatalf("%d instance(s): %v", k, err)
	}
	run.Instances = k
	for _, m := range insts {
		m.stop(b)
	}
	return run
}

// config is instance n's configuration after [component] and [http], as
// make demo-cluster writes it: records and relay queue in the database
// dsn (its sessions named mediaslot-N), files in the S3 bucket, the
// cluster's token key; the per-user slot rate off (each instance keeps
// its own); the relay's limits raised so that one sender may queue n
// messages for one recipient.
func (c *benchCluster) config(dsn string, n int, admin string, messages int) string {
	return fmt.Sprintf(`
[upload]
token_key = %q
slot_rate = 0.0
daily_quota = 107374182400

%s
[data]
dir = "data"
backend = "postgres"
dsn = %q

[relay]
sender_share = 1.0
max_messages = %d
max_bytes = 1073741824
max_sender_messages = %d
max_sender_bytes = 1073741824

[admin]
listen = %q
`, c.key, c.gw.StoreConfig("redirect"),
		fmt.Sprintf("%s&application_name=mediaslot-%d", dsn, n), max(1000, 2*messages), max(4096, 2*messages), admin)
}

// ready reports whether the instance's admin listener says it is ready:
// connected to the server, the store probed.
func ready(admin string) bool {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ejabberdVersion is the installed package's version, "" if unknown.
func ejabberdVersion() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "ejabberd").Output()
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(out))
}
