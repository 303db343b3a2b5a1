package upload

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// readFromRecorder records what the handler hands to the ResponseWriter's
// ReadFrom: net/http's own ResponseWriter sends an *os.File (or an
// io.LimitedReader of one) with sendfile(2), anything else by copying.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	src []io.Reader
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.src = append(r.src, src)
	return io.Copy(struct{ io.Writer }{r.ResponseRecorder}, src)
}

// A download from the disk store reaches the ResponseWriter as the stored
// *os.File, for a whole file and for a Range, through every wrapper of the
// handler (CORS), so that net/http serves it with sendfile.
func TestGetHandsFileToSendfile(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("sendfile "), 50_000)
	slot := f.issue(t, "movie.mp4", int64(len(body)), "video/mp4")
	if resp, _ := do(t, "PUT", f.url(slot.PutURL), body, ctype("video/mp4")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	for _, rng := range []string{"", "bytes=1000-"} {
		req := httptest.NewRequest(http.MethodGet, f.url(slot.GetURL), nil)
		req.Header.Set("Origin", "https://web.example.net")
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		f.svc.Handler().ServeHTTP(rec, req)
		if rec.Code/100 != 2 || len(rec.src) != 1 {
			t.Fatalf("GET %q: %d, ReadFrom called %d times", rng, rec.Code, len(rec.src))
		}
		src := rec.src[0]
		if l, ok := src.(*io.LimitedReader); ok {
			src = l.R
		}
		if _, ok := src.(*os.File); !ok {
			t.Errorf("GET %q: the ResponseWriter got a %T, not an *os.File: no sendfile", rng, rec.src[0])
		}
	}
}
