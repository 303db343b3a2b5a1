// Command mediaslot is an XEP-0363 HTTP File Upload component for any XMPP
// server. Run `mediaslot help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"mediaslot/internal/dbfile"
)

// Set at build time: go build -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// command is one subcommand; run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":        {"run the component and its HTTP front (--config FILE; --check-config probes the setup and exits)", runServe},
	"send":         {"upload files and send them to XMPP recipients (--help for flags)", withInsecureHint(send)},
	"receive":      {"wait for media messages and download the files (--help for flags)", withInsecureHint(receive)},
	"check":        {"check a XEP-0363 service's conformance (--help for flags)", withInsecureHint(check)},
	"db":           {"db check: read the whole database and report damage (--config FILE or --db FILE)", runDB},
	"migrate-data": {"move slot records, quotas and the relay queue from a bbolt file into PostgreSQL (--help for flags)", runMigrate},
	"bench":        {"measure slot latency and throughput, PUT and GET, against a baseline (--help for flags)", withInsecureHint(runBench)},
	"version":      {"print version and commit", runVersion},
}

// order of the help text
var commandOrder = []string{"serve", "send", "receive", "check", "db", "migrate-data", "bench", "version"}

// errUsage marks errors already explained to the user; exit code 2.
var errUsage = errors.New("usage")

func main() {
	dbfile.Init() // the database checker child: before anything else
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mediaslot: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintf(stderr, "mediaslot %s: %v\n", args[0], err)
		return exitCode(err)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mediaslot <command> [flags]\n\ncommands:")
	for _, name := range commandOrder {
		fmt.Fprintf(w, "  %-12s %s\n", name, commands[name].summary)
	}
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "mediaslot %s (commit %s)\n", version, commit)
	return nil
}
