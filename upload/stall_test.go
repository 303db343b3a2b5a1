package upload

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client that reads nothing of a download loses its connection, and the
// open file, once one piece of the answer could not go out within
// answerTimeout, not only at the whole answer's size-based deadline (here
// an hour): before, 1000 such clients held every place for 53 minutes per
// 100 MiB file, at no cost in bandwidth.
func TestNonReadingDownloaderIsCut(t *testing.T) {
	oldAnswer, oldRate, oldGrace := answerTimeout, getMinRate, getGrace
	t.Cleanup(func() { answerTimeout, getMinRate, getGrace = oldAnswer, oldRate, oldGrace })
	answerTimeout, getMinRate, getGrace = 200*time.Millisecond, 1<<30, time.Hour
	f := newFixture(t)
	f.svc.opt.MaxFileSize = 64 << 20
	body := bytes.Repeat([]byte("z"), 64<<20) // far past loopback's socket buffers
	s := f.issue(t, "big.bin", int64(len(body)), "")
	f.put(t, s, body)

	srv, ended := f.serverTellingGetEnds(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := strings.TrimPrefix(s.GetURL, strings.TrimRight(f.svc.opt.PublicURL, "/"))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path) // and read nothing
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that reads nothing still holds its download after 10 s (answerTimeout 200ms)")
	}
}

// serverTellingGetEnds serves the fixture's handler on a server of its own,
// which tells on ended when a GET's handler has returned: for tests of
// clients that stop reading, which read nothing until the server is done.
func (f *fixture) serverTellingGetEnds(t *testing.T) (*httptest.Server, <-chan struct{}) {
	ended := make(chan struct{}, 1)
	h := f.svc.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Method == http.MethodGet {
			ended <- struct{}{}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, ended
}
