package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"mediaslot/client"
)

// An HTTPS server with a certificate this machine does not trust gets the
// --insecure hint (as a download in receive or a PUT in send meets it);
// other errors are left as they are and keep their exit code.
func TestSuggestInsecure(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := http.Get(srv.URL) // the default client trusts only the system's roots
	if err == nil {
		t.Fatal("self-signed certificate accepted")
	}
	got := suggestInsecure(fmt.Errorf("GET %s: %w", srv.URL, err))
	if !strings.Contains(got.Error(), "x509: certificate") || !strings.Contains(got.Error(), "add --insecure") {
		t.Errorf("certificate error: %v", got)
	}
	other := fmt.Errorf("%w: 127.0.0.1:1: refused", client.ErrUnreachable)
	if got := suggestInsecure(other); got != other || exitCode(got) != exitUnreachable {
		t.Errorf("other error: %v (exit %d)", got, exitCode(got))
	}
	if suggestInsecure(nil) != nil {
		t.Error("nil became an error")
	}
	if hinted := suggestInsecure(fmt.Errorf("%w: %w", client.ErrTimeout, err)); !errors.Is(hinted, client.ErrTimeout) || exitCode(hinted) != exitTimeout {
		t.Errorf("the hint hides the error class: %v", hinted)
	}
}
