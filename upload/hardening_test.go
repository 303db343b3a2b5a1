package upload

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestRangeBounds: no ranged answer is larger than the file and a few part
// headers. Many ranges or overlapping ones get the whole file (200); a set
// with nothing satisfiable, "bytes=-0" included, gets 416; ordinary single
// and multiple ranges still get 206.
func TestRangeBounds(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("0123456789"), 2000)
	size := len(body)
	s := f.issue(t, "r.bin", int64(size), "")
	f.put(t, s, body)
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		return do(t, "GET", f.url(s.GetURL), nil, map[string]string{"Range": rng})
	}

	var many []string
	for i := range 10000 {
		many = append(many, fmt.Sprintf("%d-%d", 2*i, 2*i))
	}
	for name, rng := range map[string]string{
		"10,000 one-byte ranges": "bytes=" + strings.Join(many, ","),
		"17 ranges":              "bytes=" + strings.Join(many[:16+1], ","),
		"overlapping":            "bytes=0-5000,1000-6000,2000-7000",
		"overlapping suffix":     "bytes=19000-19500,-1000",
	} {
		resp, got := get(rng)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
			t.Errorf("%s: %s, %d bytes, want 200 with the whole file (%d bytes)", name, resp.Status, len(got), size)
		}
	}

	for _, rng := range []string{"bytes=-0", "bytes=-0,-0", "bytes=20000-", "bytes=-0,30000-40000"} {
		resp, got := get(rng)
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%s: %s %q (%d bytes), want 416 bytes */%d", rng, resp.Status, resp.Header.Get("Content-Range"), len(got), size)
		}
	}

	if resp, got := get("bytes=-0,5-9"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[5:10]) {
		t.Errorf("bytes=-0,5-9: %s %q, want 206 with bytes 5-9", resp.Status, got)
	}
	if resp, got := get("bytes=-5"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[size-5:]) {
		t.Errorf("bytes=-5: %s %q", resp.Status, got)
	}
	resp, got := get("bytes=" + strings.Join(many[:16], ","))
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || len(got) > size {
		t.Errorf("%d ranges: %s %q, %d bytes", 16, resp.Status, resp.Header.Get("Content-Type"), len(got))
	}
}

// TestCORSVaryOrigin: every answer says Vary: Origin, whether the Origin is
// allowed, refused or absent, for "*" and for a list: the CORS headers
// depend on it, so caches must not share the answers between origins.
func TestCORSVaryOrigin(t *testing.T) {
	for _, origins := range [][]string{{"*"}, {"https://web.example.net"}} {
		f := newFixture(t)
		f.svc.opt.CORSOrigin = origins
		s := f.issue(t, "a.txt", 5, "")
		f.put(t, s, []byte("hello"))
		for _, origin := range []string{"https://web.example.net", "https://evil.example.org", ""} {
			hdr := map[string]string{}
			if origin != "" {
				hdr["Origin"] = origin
			}
			for _, req := range []struct{ method, url string }{
				{"GET", s.GetURL}, {"HEAD", s.GetURL}, {"OPTIONS", s.PutURL},
				{"GET", "https://files.example.net/file/0123456789abcdef0123456789abcdef/x"},
			} {
				resp, _ := do(t, req.method, f.url(req.url), nil, hdr)
				if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
					t.Errorf("origins %v, Origin %q, %s %s: %s without Vary: Origin (%v)", origins, origin, req.method, req.url, resp.Status, resp.Header)
				}
			}
		}
	}
}
