package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"mediaslot/config"
	"mediaslot/xmpp"
)

// checkTimeout bounds each network probe of --check-config.
const checkTimeout = 10 * time.Second

// checkConfig is `mediaslot serve --check-config`: it loads the
// configuration as serve does and probes everything serve depends on,
// without serving and without changing anything that serve keeps (it writes
// and deletes one probe object in the store). Each check prints one line,
//
//	ok      xmpp      127.0.0.1:5347 accepted the handshake for upload.example.net
//	FAILED  store     cannot write in /var/lib/mediaslot/files: … permission denied
//
// and a failure says what to change. The error, when any check failed,
// makes the exit code 1; a warning (WARN: may not be a problem from where
// the check runs) does not.
func checkConfig(ctx context.Context, path string, w io.Writer) error {
	r := &checkReport{w: w}
	cfg, err := config.Load(path)
	if err != nil {
		r.report("config", "", fmt.Errorf("%s is not usable:\n%w", path, err))
		return r.result()
	}
	r.report("config", path+" is valid", nil)
	r.report(checkXMPP(ctx, cfg))
	r.report(checkStore(ctx, cfg))
	r.report(checkDatabase(ctx, cfg))
	r.report(checkTokenKey(cfg))
	r.report(checkHTTP(cfg))
	r.warn(checkPublicURL(ctx, cfg))
	if cfg.Admin.Listen != "" {
		r.report("admin", listenDetail(cfg.Admin.Listen), checkListen(cfg.Admin.Listen))
	}
	return r.result()
}

// checkReport prints check results and counts the failures and warnings.
type checkReport struct {
	w                      io.Writer
	checks, failed, warned int
}

// warn reports a check whose problem may not be one (a warning does not
// fail the run): WARN and the problem, or ok and the detail.
func (r *checkReport) warn(name, detail string, err error) {
	if err == nil {
		r.report(name, detail, nil)
		return
	}
	r.checks++
	r.warned++
	r.print("WARN", name, err.Error())
}

func (r *checkReport) report(name, detail string, err error) {
	r.checks++
	status := "ok"
	if err != nil {
		r.failed++
		status, detail = "FAILED", err.Error()
	}
	r.print(status, name, detail)
}

func (r *checkReport) print(status, name, detail string) {
	// Continuation lines (several config errors) are indented under the detail.
	detail = strings.ReplaceAll(strings.TrimSpace(detail), "\n", "\n"+strings.Repeat(" ", 18))
	fmt.Fprintf(r.w, "%-7s %-9s %s\n", status, name, detail)
}

func (r *checkReport) result() error {
	if r.failed > 0 {
		return fmt.Errorf("%d of %d checks FAILED", r.failed, r.checks)
	}
	if r.warned > 0 {
		fmt.Fprintf(r.w, "all %d checks ok, %d with a warning\n", r.checks, r.warned)
		return nil
	}
	fmt.Fprintf(r.w, "all %d checks ok\n", r.checks)
	return nil
}

// checkXMPP connects to the component port and does the XEP-0114
// handshake, then closes the stream.
func checkXMPP(ctx context.Context, cfg config.Config) (string, string, error) {
	c := cfg.Component
	err := xmpp.Probe(ctx, c.Server, c.JID, c.Secret, checkTimeout)
	if err == nil {
		return "xmpp", fmt.Sprintf("%s accepted the handshake for %s", c.Server, c.JID), nil
	}
	var pe *xmpp.ProbeError
	if !errors.As(err, &pe) {
		return "xmpp", "", err
	}
	if pe.Step == xmpp.StepConnect {
		return "xmpp", "", connectError(c.Server, pe.Err)
	}
	switch pe.Condition() {
	case "not-authorized":
		return "xmpp", "", fmt.Errorf("handshake refused: the secret does not match component_secret in prosody.cfg.lua for %s "+
			"(ejabberd: the password of %s under the ejabberd_service listener's hosts; mediaslot reads component.secret, "+
			"component.secret_file or %s)", c.JID, c.JID, config.EnvComponentSecret)
	case "host-unknown":
		return "xmpp", "", fmt.Errorf("the server at %s does not know %s as an external component: "+
			"add Component %q with component_secret to prosody.cfg.lua (ejabberd: add it to hosts of the ejabberd_service listener), "+
			"or fix component.jid; or %s is the client port (5222), not the component port (Prosody: component_ports, 5347)",
			c.Server, c.JID, c.JID, c.Server)
	case "conflict":
		return "xmpp", "", fmt.Errorf("the server at %s already has a component connected as %s: "+
			"is mediaslot already running? (the other checks may fail for the same reason)", c.Server, c.JID)
	case "":
		return "xmpp", "", fmt.Errorf("handshake with %s failed: %v: is it an XMPP server's component port?", c.Server, pe.Err)
	}
	return "xmpp", "", fmt.Errorf("handshake refused by %s: %v", c.Server, pe.Err)
}

// connectError explains a failed TCP connection to the component port.
func connectError(server string, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused: is the XMPP server running, and is this its component port? "+
			"(Prosody: component_ports, default 5347; ejabberd: a listener with module ejabberd_service)", server)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Errorf("cannot connect to %s: no answer within %v: wrong address, or a firewall drops the connection", server, checkTimeout)
	}
	return fmt.Errorf("cannot connect to %s: %v", server, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkHTTP checks that the HTTP listener's address is free and the TLS
// certificate loads and is current.
func checkHTTP(cfg config.Config) (string, string, error) {
	h := cfg.HTTP
	if err := checkListen(h.Listen); err != nil {
		return "http", "", err
	}
	detail := listenDetail(h.Listen) + "; clients get URLs under " + h.PublicURL
	if h.TLSCert == "" {
		return "http", detail, nil
	}
	pair, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey)
	if err != nil {
		return "http", "", fmt.Errorf("cannot load the TLS certificate (http.tls_cert %s, http.tls_key %s): %v", h.TLSCert, h.TLSKey, err)
	}
	leaf := pair.Leaf
	if now := time.Now(); now.After(leaf.NotAfter) {
		return "http", "", fmt.Errorf("the TLS certificate %s expired on %s: renew it", h.TLSCert, leaf.NotAfter.Format(time.DateOnly))
	}
	return "http", fmt.Sprintf("%s; TLS certificate for %s valid until %s", detail,
		strings.Join(leaf.DNSNames, ", "), leaf.NotAfter.Format(time.DateOnly)), nil
}

func listenDetail(addr string) string { return addr + " is free to listen on" }

// checkListen binds addr for a moment.
func checkListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln.Close()
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s is in use: is mediaslot already running, or another server on that port?", addr)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("cannot listen on %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("cannot listen on %s: no such address on this machine", addr)
	}
	return fmt.Errorf("cannot listen on %s: %v", addr, err)
}
