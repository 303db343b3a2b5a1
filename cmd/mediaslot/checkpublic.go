package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"

	"mediaslot/config"
)

// checkPublicURL checks what clients meet at http.public_url, the base of
// every upload and download URL: that http.tls_cert names its host, and
// that a request to it reaches http.listen (public_url on another port, or
// a reverse proxy that forwards elsewhere, passes every other check and
// fails every upload). For the second it answers on http.listen for a
// moment and fetches public_url + "/file/<random>/check", a path a reverse
// proxy forwards as it does downloads, expecting the random answer back.
// Problems are warnings: clients may reach public_url by a route this
// machine does not have (split DNS, no hairpin NAT).
func checkPublicURL(ctx context.Context, cfg config.Config) (string, string, error) {
	h := cfg.HTTP
	u, err := url.Parse(h.PublicURL)
	if err != nil { // config.Load has refused such a public_url already
		return "public", "", err
	}
	var problems []error
	var serverTLS *tls.Config
	if h.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey)
		if err != nil {
			return "public", "not probed: the TLS certificate does not load (see http)", nil
		}
		if err := pair.Leaf.VerifyHostname(u.Hostname()); err != nil {
			problems = append(problems, fmt.Errorf("the TLS certificate %s does not cover %s, the host of public_url %s: "+
				"clients will refuse the connection (%v)", h.TLSCert, u.Hostname(), h.PublicURL, err))
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	detail, err := probePublicURL(ctx, h.PublicURL, h.Listen, serverTLS)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return "public", "", errors.Join(problems...)
	}
	if serverTLS != nil {
		detail += "; the TLS certificate covers " + u.Hostname()
	}
	return "public", detail, nil
}

// probePublicURL serves a random answer on listen and fetches it through
// publicURL.
func probePublicURL(ctx context.Context, publicURL, listen string, serverTLS *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "not probed: " + listen + " is not free (see http)", nil
	}
	token := rand.Text()
	path := "/file/" + token + "/check"
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, path) { // a proxy may keep a path prefix of public_url
				http.NotFound(w, r)
				return
			}
			_, _ = io.WriteString(w, token)
		}),
		ReadHeaderTimeout: checkTimeout,
		ErrorLog:          log.New(io.Discard, "", 0), // what went wrong is the client's error
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// Reachability only: whether clients trust the certificate is for the
	// certificate's own check (and for the proxy's owner).
	client := &http.Client{Timeout: checkTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // #nosec G402 -- only the route is probed here
	}}
	target := strings.TrimRight(publicURL, "/") + path
	shown := strings.TrimRight(publicURL, "/") + "/file/…/check"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s did not reach http.listen %s: %v: "+
			"public_url must lead there, directly or through a reverse proxy, or clients cannot upload "+
			"(ignore this if clients reach public_url by a route this machine does not have)", shown, listen, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(len(token))+1))
	if resp.StatusCode != http.StatusOK || string(body) != token {
		return "", fmt.Errorf("GET %s was answered (%s) by something other than http.listen %s: "+
			"public_url must lead there, directly or through a reverse proxy that forwards every path, or clients cannot upload",
			shown, resp.Status, listen)
	}
	return "GET " + shown + " reached http.listen " + listen, nil
}

// unwrapURLError drops net/http's `Get "URL": ` prefix, which would repeat
// the URL with the probe's random path.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
