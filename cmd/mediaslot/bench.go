package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/bench"
	"mediaslot/client"
)

const benchAbout = `Measures XEP-0363 upload services as a client sees them: slot latency
(p50/p90/p99 over N sequential requests), slot throughput (N requests with K in
flight), and PUT and GET throughput for a file of --size bytes. With --vs a
second service (e.g. Prosody's mod_http_file_share) is measured in the same
run, in alternating rounds (A, B, A, B, ...), and the ratios A/B printed. With
--bare-dir, a bare Go HTTP handler writing to that directory with the disk
store's fsync policy joins the PUT/GET rounds: the physical limit.
--pid NAME=PID (repeatable) also reports what a server process spent: CPU per
slot and per MB, bytes it read per byte uploaded (about 0 when it is out of
the data path), and its peak RSS per phase (VmHWM, reset at each phase when
permitted).

More modes: 'mediaslot bench relay --help' (offline relay flush, end to end),
'mediaslot bench fill-queue --help' (fill a relay queue for memory tests) and
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
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var login loginFlags
	login.register(fs)
	service := fs.String("service", "", "the upload service `JID` to measure (required)")
	vs := fs.String("vs", "", "a second service `JID` to compare with (the baseline)")
	size := sizeFlag(16 << 20)
	fs.Var(&size, "size", "PUT/GET file size in `BYTES` (suffixes KiB, MiB, GiB); 0 skips PUT and GET")
	n := fs.Int("n", 2000, "slot requests per service, sequentially and again with --inflight in flight")
	inflight := fs.Int("inflight", 16, "slot requests in flight in the throughput phase; 0 skips it")
	rounds := fs.Int("rounds", 3, "rounds; every phase alternates between the services in each round")
	bareDir := fs.String("bare-dir", "", "also PUT/GET to a bare Go HTTP handler storing files in `DIR` (same disk, same fsyncs)")
	var pids pidFlags
	fs.Var(&pids, "pid", "watch a server process: `NAME=PID` (repeatable)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = usageFunc(fs, "--jid JID --service JID [--vs JID] [flags]", benchAbout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "bench", "unexpected argument %q", fs.Arg(0))
	}
	opt, err := login.options(fs, stderr)
	if err != nil {
		return err
	}
	var targets []bench.Target
	for _, s := range []struct{ name, flag, v string }{{"mediaslot", "service", *service}, {"baseline", "vs", *vs}} {
		if s.v == "" {
			continue
		}
		j, err := jid.Parse(s.v)
		if err != nil {
			return usageError(stderr, "bench", "--%s %q: %v", s.flag, s.v, err)
		}
		targets = append(targets, bench.Target{Name: s.name, Service: j})
	}
	if *service == "" {
		return usageError(stderr, "bench", "--service is required")
	}
	if *n < 0 || *inflight < 0 || *rounds < 1 {
		return usageError(stderr, "bench", "--n and --inflight must not be negative, --rounds at least 1")
	}
	c, err := client.Dial(ctx, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	bopt := bench.Options{Client: c, Targets: targets, N: *n, Inflight: *inflight, Size: int64(size), Rounds: *rounds, Procs: pids}
	if !*quiet {
		bopt.Progress = stderr
	}
	if *bareDir != "" && size > 0 {
		stop, url, err := serveBare(*bareDir)
		if err != nil {
			return err
		}
		defer stop()
		bopt.Bare = url
	}
	res, err := bench.Run(ctx, bopt)
	if err != nil {
		return err
	}
	if *asJSON {
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}

// serveBare runs the bare handler on a loopback port.
func serveBare(dir string) (stop func(), url string, err error) {
	h, err := bench.NewBareHandler(dir)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, "http://" + ln.Addr().String(), nil
}

func benchRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error     { return nil }
func benchFillQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
func benchReport(ctx context.Context, args []string, stdout, stderr io.Writer) error    { return nil }
