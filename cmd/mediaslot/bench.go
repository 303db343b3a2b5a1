package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/bench"
	"mediaslot/client"
)

const benchAbout = `Measures XEP-0363 upload services as a client sees them: slot latency
(p50/p90/p99 over --n sequential requests), slot throughput (--burst requests
with --inflight in flight), and PUT and GET throughput for a file of --size bytes. With --vs a
second service (e.g. Prosody's mod_http_file_share) is measured in the same
run, in alternating rounds (A, B, A, B, ...), and the ratios A/B printed. With
--bare-dir, a bare Go HTTP handler writing to that directory with the disk
store's fsync policy, in a process of its own ('mediaslot bench bare'), joins
the PUT/GET rounds: the physical limit.
--pid NAME=PID (repeatable) also reports what a server process spent: CPU per
slot and per MB, bytes it read per byte uploaded (about 0 when it is out of
the data path), and its peak RSS per phase (VmHWM, reset at each phase when
permitted).

More modes: 'mediaslot bench relay --help' (offline relay flush, end to end),
'mediaslot bench fill-queue --help' (fill a relay queue for memory tests),
'mediaslot bench bare --help' (the bare handler alone) and
'mediaslot bench report --help' (docs/BENCHMARKS.md from results).
The password comes from MEDIASLOT_PASSWORD, --password-file or --password.
`

// pidFlags collects --pid NAME=PID.
type pidFlags []bench.Proc

func (p *pidFlags) String() string { return fmt.Sprint(*p) }

func (p *pidFlags) Set(v string) error {
	name, num, ok := strings.Cut(v, "=")
	pid, err := strconv.Atoi(num)
	if !ok || name == "" || err != nil || pid <= 0 {
		return fmt.Errorf("want NAME=PID, got %q", v)
	}
	*p = append(*p, bench.Proc{Name: name, PID: pid})
	return nil
}

// withSelf adds the bench process itself (the clients) to the watched ones.
func withSelf(p pidFlags) []bench.Proc {
	return append([]bench.Proc{bench.Self()}, p...)
}

// sizeFlag is a byte count with an optional KiB/MiB/GiB suffix.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	*s = sizeFlag(n)
	return err
}

func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a byte count like 16777216 or 16MiB")
	}
	return n * mult, nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "relay":
			return benchRelay(ctx, args[1:], stdout, stderr)
		case "fill-queue":
			return benchFillQueue(ctx, args[1:], stdout, stderr)
		case "report":
			return benchReport(ctx, args[1:], stdout, stderr)
		case "bare":
			return benchBare(ctx, args[1:], stdout, stderr)
		}
	}
	var f benchFlags
	opt, err := f.parse(args, stderr)
	if err != nil {
		return err
	}
	c, err := client.Dial(ctx, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	f.bench.Client = c
	if f.bareDir != "" && f.bench.Size > 0 {
		stop, url, err := serveBare(ctx, f.bareDir, stderr)
		if err != nil {
			return err
		}
		defer stop()
		f.bench.Bare = url
	}
	res, err := bench.Run(ctx, f.bench)
	if err != nil {
		return err
	}
	if f.json {
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}

// benchFlags are the main bench mode's flags.
type benchFlags struct {
	bench   bench.Options // all but Client and Bare
	bareDir string
	json    bool
}

// parse reads the flags; problems are usage errors.
func (f *benchFlags) parse(args []string, stderr io.Writer) (client.Options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var login loginFlags
	login.register(fs)
	service := fs.String("service", "", "the upload service `JID` to measure (required)")
	vs := fs.String("vs", "", "a second service `JID` to compare with (the baseline)")
	size := sizeFlag(16 << 20)
	fs.Var(&size, "size", "PUT/GET file size in `BYTES` (suffixes KiB, MiB, GiB); 0 skips PUT and GET")
	n := fs.Int("n", 2000, "sequential slot requests per service (latency); 0 skips them")
	burst := fs.Int("burst", -1, "slot requests per service with --inflight in flight (throughput); default --n, 0 skips them")
	inflight := fs.Int("inflight", 16, "slot requests in flight in the throughput phase")
	rounds := fs.Int("rounds", 3, "rounds; every phase alternates between the services in each round")
	fs.StringVar(&f.bareDir, "bare-dir", "", "also PUT/GET to a bare Go HTTP handler storing files in `DIR` (same disk, same fsyncs)")
	var pids pidFlags
	fs.Var(&pids, "pid", "watch a server process: `NAME=PID` (repeatable)")
	fs.BoolVar(&f.json, "json", false, "print the results as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = usageFunc(fs, "--jid JID --service JID [--vs JID] [flags]", benchAbout)
	if err := fs.Parse(args); err != nil {
		return client.Options{}, err
	}
	if fs.NArg() > 0 {
		return client.Options{}, usageError(stderr, "bench", "unexpected argument %q", fs.Arg(0))
	}
	opt, err := login.options(fs, stderr)
	if err != nil {
		return opt, err
	}
	if *service == "" {
		return opt, usageError(stderr, "bench", "--service is required")
	}
	for _, s := range []struct{ name, flag, v string }{{"mediaslot", "service", *service}, {"baseline", "vs", *vs}} {
		if s.v == "" {
			continue
		}
		j, err := jid.Parse(s.v)
		if err != nil {
			return opt, usageError(stderr, "bench", "--%s %q: %v", s.flag, s.v, err)
		}
		f.bench.Targets = append(f.bench.Targets, bench.Target{Name: s.name, Service: j})
	}
	if *burst < 0 {
		*burst = *n
	}
	if *n < 0 || *inflight < 1 || *rounds < 1 {
		return opt, usageError(stderr, "bench", "--n must not be negative, --inflight and --rounds at least 1")
	}
	f.bench.N, f.bench.Burst, f.bench.Inflight, f.bench.Size, f.bench.Rounds = *n, *burst, *inflight, int64(size), *rounds
	f.bench.Procs = withSelf(pids)
	if !*quiet {
		f.bench.Progress = stderr
	}
	return opt, nil
}

// serveBare runs the bare handler in a child process (`bench bare`) on a
// loopback port, as mediaslot runs in its own. Inside the load generator's
// process it shared the generator's scheduler and garbage collector with the
// client uploading to it, so the end-to-end comparison with mediaslot was
// not like for like.
func serveBare(ctx context.Context, dir string, stderr io.Writer) (stop func(), url string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("bare handler: %w", err)
	}
	cmd := exec.Command(exe, "bench", "bare", "--dir", dir)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("bare handler: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("bare handler: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	// the child prints its URL once it listens, or exits
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case url = <-line:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	if !strings.HasPrefix(url, "http://") {
		stop()
		return nil, "", fmt.Errorf("bare handler: the child process %s did not report its address", exe)
	}
	return stop, url, nil
}

const benchBareAbout = `Serves the bare handler (see --bare-dir of 'mediaslot bench') on a
loopback port until interrupted, storing files in --dir, and prints its URL
on the first line of stdout once it listens. 'mediaslot bench --bare-dir'
runs it as a child process.
`

func benchBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "store files in `DIR` (required)")
	listen := fs.String("listen", "127.0.0.1:0", "listen on `ADDR`")
	fs.Usage = usageFunc(fs, "--dir DIR [flags]", benchBareAbout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return usageError(stderr, "bench bare", "--dir is required, and nothing else")
	}
	h, err := bench.NewBareHandler(*dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	select {
	case <-ctx.Done():
		return srv.Close()
	case err := <-done:
		return err
	}
}

const benchRelayAbout = `Measures the offline media relay end to end through the XMPP server: the
--jid account queues N media messages (with a thumbnail of --thumbnail bytes
as XEP-0231 data) through the relay --service for --to, who is offline, from
--senders sessions at once; each session then relays a marker to --witness,
an online account, and when every marker has arrived all messages are queued
(the relay keeps each sender's order). Then --to logs in and the time from
its available presence to the last message is the flush time.
`

func benchRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var login loginFlags
	login.register(fs)
	service := fs.String("service", "", "the relay: mediaslot's component `JID` (required)")
	to := fs.String("to", "", "the recipient `JID`, offline when the run starts (required)")
	toPass := fs.String("to-password", "", "the recipient's password")
	witness := fs.String("witness", "", "an account `JID` that receives the markers (required)")
	witnessPass := fs.String("witness-password", "", "the witness's password")
	n := fs.Int("n", 10000, "messages to queue")
	senders := fs.Int("senders", 4, "sender sessions")
	pipeline := fs.Int("pipeline", 4, "messages in flight per sender session")
	thumb := sizeFlag(5600)
	fs.Var(&thumb, "thumbnail", "thumbnail `BYTES` per message (about 8 KB stanzas with the default)")
	var pids pidFlags
	fs.Var(&pids, "pid", "watch a server process: `NAME=PID` (repeatable)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	fs.Usage = usageFunc(fs, "--jid JID --service JID --to JID --witness JID [flags]", benchRelayAbout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *service == "" || *to == "" || *witness == "" {
		return usageError(stderr, "bench relay", "--service, --to and --witness are required")
	}
	opt, err := login.options(fs, stderr)
	if err != nil {
		return err
	}
	relay, err := jid.Parse(*service)
	if err != nil {
		return usageError(stderr, "bench relay", "--service %q: %v", *service, err)
	}
	ropt, err := otherAccount(opt, *to, *toPass)
	if err != nil {
		return usageError(stderr, "bench relay", "--to: %v", err)
	}
	wopt, err := otherAccount(opt, *witness, *witnessPass)
	if err != nil {
		return usageError(stderr, "bench relay", "--witness: %v", err)
	}
	res, err := bench.RunRelay(ctx, bench.RelayOptions{
		Sender: opt, Recipient: ropt, Witness: wopt, Relay: relay,
		N: *n, Senders: *senders, Pipeline: *pipeline, Thumbnail: int(thumb), Procs: withSelf(pids), Progress: stderr,
	})
	if res != nil {
		if *asJSON {
			if werr := res.WriteJSON(stdout); werr != nil {
				return werr
			}
		} else {
			res.WriteTable(stdout)
		}
	}
	return err
}

// otherAccount is opt for another account on the same server.
func otherAccount(opt client.Options, account, password string) (client.Options, error) {
	j, err := jid.Parse(account)
	if err != nil || j.Localpart() == "" {
		return opt, fmt.Errorf("%q is not an account JID", account)
	}
	if password == "" {
		return opt, fmt.Errorf("no password")
	}
	opt.JID, opt.Password = j, password
	return opt, nil
}

const benchFillAbout = `Fills the relay queue in the bbolt file of a stopped mediaslot (data.dir/
mediaslot.db) with N stored media messages spread over --recipients, as the
relay stores them: set-up for measuring mediaslot's memory with a large queue.
The file is written without an fsync per commit and synced at the end.
`

func benchFillQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench fill-queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "the bbolt `FILE` (required)")
	n := fs.Int("n", 1_000_000, "stanzas to queue")
	recipients := fs.Int("recipients", 1000, "spread over this many recipients")
	domain := fs.String("domain", "localhost", "the recipients' `DOMAIN`")
	include := fs.String("include", "", "comma-separated recipient `JIDs` to use first (e.g. bob@localhost)")
	size := sizeFlag(1024)
	fs.Var(&size, "size", "`BYTES` per stored stanza")
	fs.Usage = usageFunc(fs, "--db FILE [flags]", benchFillAbout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" || *n <= 0 || *recipients <= 0 {
		return usageError(stderr, "bench fill-queue", "--db is required, --n and --recipients must be positive")
	}
	var rcpts []string
	if *include != "" {
		rcpts = strings.Split(*include, ",")
	}
	for i := len(rcpts); i < *recipients; i++ {
		rcpts = append(rcpts, fmt.Sprintf("user%05d@%s", i, *domain))
	}
	res, err := bench.FillQueue(ctx, bench.FillOptions{DB: *db, N: *n, Recipients: rcpts, Size: int(size), Progress: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "queued %d stanzas of %d bytes for %d recipients in %.1f s; queue: %d entries, %d stanzas, %d bytes\n",
		res.N, res.Size, len(rcpts), res.Seconds, res.Stats.Entries, res.Stats.Stanzas, res.Stats.Bytes)
	return nil
}

const benchReportAbout = `Writes docs/BENCHMARKS.md from the results directory scripts/bench.sh fills
(machine facts, commands, go test output, the JSON of each mediaslot bench run,
profiles). Parts whose files are missing say so.
`

func benchReport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the results `DIR` (required)")
	out := fs.String("out", "", "write to `FILE` instead of standard output")
	fs.Usage = usageFunc(fs, "--dir DIR [--out FILE]", benchReportAbout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return usageError(stderr, "bench report", "--dir is required")
	}
	r, err := bench.LoadReport(*dir)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := r.WriteReport(&b); err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(b.Bytes())
		return err
	}
	return os.WriteFile(*out, b.Bytes(), 0o644)
}
