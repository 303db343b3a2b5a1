package upload

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestRangeBoundAfterUnsatisfiablePart: a part that starts past the end of
// the file is skipped by http.ServeContent without reading its end, so a
// malformed end there ("30000-x", "30000-5") must not let the ranges after
// it through unbounded (10,000 one-byte ranges made a multipart answer
// many times the file).
func TestRangeBoundAfterUnsatisfiablePart(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("0123456789"), 2000)
	s := f.issue(t, "r.bin", int64(len(body)), "")
	f.put(t, s, body)
	var many []string
	for i := range 10000 {
		many = append(many, fmt.Sprintf("%d-%d", 2*i, 2*i))
	}
	for _, first := range []string{"30000-x", "30000-5", "30000-"} {
		rng := "bytes=" + first + "," + strings.Join(many, ",")
		resp, got := do(t, "GET", f.url(s.GetURL), nil, map[string]string{"Range": rng})
		if len(got) > len(body)+maxRanges*200 {
			t.Errorf("%s,...: %s, %d bytes for a %d-byte file", first, resp.Status, len(got), len(body))
		}
		if resp.StatusCode == http.StatusPartialContent && strings.Count(string(got), "Content-Range") > maxRanges {
			t.Errorf("%s,...: %d parts", first, strings.Count(string(got), "Content-Range"))
		}
	}
}
