package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/conformance"
)

const checkAbout = `Runs the conformance suite against a XEP-0363 service as the given account:
discovery, slot requests and their URLs, PUT/GET/HEAD/Range/CORS, error
conditions, one-time and validated PUTs, concurrent slots. It uploads a few
small files. Each check has the level of the requirement (MUST or SHOULD);
the exit code is 10 when a MUST check fails. Without --service the service
is discovered as clients do.
`

// checkList lists the suite's checks for the help text.
func checkList() string {
	var b strings.Builder
	b.WriteString("\nchecks:\n")
	for _, c := range conformance.Checks() {
		fmt.Fprintf(&b, "  %-6s %-23s %s\n", c.Level, c.ID, c.Title)
	}
	return b.String()
}

func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var login loginFlags
	login.register(fs)
	service := fs.String("service", "", "the upload service `JID` to check (default: discovered)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	allowHTTP := fs.Bool("allow-http", false, "skip the https check (test deployments without TLS)")
	fs.Usage = usageFunc(fs, "--jid JID [--service JID] [flags]", checkAbout+checkList())
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "check", "unexpected argument %q", fs.Arg(0))
	}
	opt, err := login.options(fs, stderr)
	if err != nil {
		return err
	}
	var target jid.JID
	if *service != "" {
		if target, err = jid.Parse(*service); err != nil {
			return usageError(stderr, "check", "--service %q: %v", *service, err)
		}
	}
	c, err := client.Dial(ctx, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	// A named service is checked even if its discovery fails: the report
	// says what is wrong with it.
	if *service == "" {
		svc, err := c.DiscoverUpload(ctx)
		if err != nil {
			return err
		}
		target = svc.JID
	}
	report := conformance.Run(ctx, c, conformance.Options{Service: target, AllowHTTP: *allowHTTP})
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if n := report.Failed(conformance.MUST); n > 0 {
		return fmt.Errorf("%d %w on %s", n, errConformance, target)
	}
	return nil
}
