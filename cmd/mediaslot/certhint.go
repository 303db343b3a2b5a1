package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
)

// insecureHint is an error caused by a TLS certificate this machine does
// not trust (the XMPP server's or the upload service's), with what to do.
type insecureHint struct{ error }

func (e insecureHint) Error() string {
	return e.error.Error() + "; the certificate is not trusted here: for a test server with a self-signed certificate, " +
		"add --insecure (it accepts any certificate)"
}

func (e insecureHint) Unwrap() error { return e.error }

// suggestInsecure adds the --insecure hint to a certificate error; other
// errors, and nil, are returned as they are.
func suggestInsecure(err error) error {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return insecureHint{err}
	}
	return err
}

// withInsecureHint wraps a client command (one with --insecure) so that a
// certificate error it returns suggests the flag.
func withInsecureHint(run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return suggestInsecure(run(ctx, args, stdout, stderr))
	}
}
