package memstore_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"mediaslot/store"
	"mediaslot/store/memstore"
	"mediaslot/store/storetest"
)

var _ interface {
	store.Store
	store.Presigner
	store.Checker
} = (*memstore.Store)(nil)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memstore.New("http://memstore.invalid") })
}

func do(t *testing.T, method, u string, body []byte, ctype string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Presigned URLs behave as an S3 server's: bound to their method, length,
// type and expiry; the upload lands out of the key's reach until Seal.
func TestPresigned(t *testing.T) {
	s := memstore.Serve(t)
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	ctx := t.Context()
	body := []byte("memstore bytes")
	n := int64(len(body))

	u, h, err := s.PresignPut(ctx, "k", n, "image/png", time.Minute)
	if err != nil || h.Get("Content-Type") != "image/png" {
		t.Fatalf("PresignPut: %v %v", h, err)
	}
	pu, _ := url.Parse(u)
	if q := pu.Query(); !strings.HasSuffix(pu.Path, "/incoming/k") || q.Get("size") != "14" || q.Get("type") != "image/png" ||
		q.Get("expires") != "1796112060" {
		t.Fatalf("PUT URL %s does not say what it allows", u)
	}
	changed := func(param, v string) string {
		q := pu.Query()
		q.Set(param, v)
		c := *pu
		c.RawQuery = q.Encode()
		return c.String()
	}
	for name, tc := range map[string]struct {
		u, ctype string
		body     []byte
	}{
		"longer":        {u, "image/png", append(bytes.Clone(body), '!')},
		"shorter":       {u, "image/png", body[1:]},
		"other type":    {u, "text/html", body},
		"no type":       {u, "", body},
		"changed size":  {changed("size", "15"), "image/png", append(bytes.Clone(body), '!')},
		"changed token": {changed("token", otherFirst(pu.Query().Get("token"))), "image/png", body},
		"other key":     {strings.Replace(u, "/incoming/k?", "/incoming/j?", 1), "image/png", body},
	} {
		if resp, _ := do(t, "PUT", tc.u, tc.body, tc.ctype); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s, want 403", name, resp.Status)
		}
	}
	if _, err := s.Seal(ctx, "k", n); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Seal after refused PUTs: %v, want ErrNotFound", err)
	}

	if resp, _ := do(t, "PUT", u, body, "image/png"); resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unsealed upload is visible: %v", err)
	}
	if info, err := s.Seal(ctx, "k", n); err != nil || info != (store.Info{Size: n, ContentType: "image/png"}) {
		t.Fatalf("Seal: %+v %v", info, err)
	}
	// The URL still accepts PUTs; what they write does not reach the sealed object.
	if resp, _ := do(t, "PUT", u, bytes.ToUpper(body), "image/png"); resp.StatusCode != 200 {
		t.Fatalf("PUT after Seal: %s", resp.Status)
	}
	if info, err := s.Seal(ctx, "k", n); err != nil || info.Size != n {
		t.Fatalf("Seal of a sealed key: %+v %v", info, err)
	}
	if got := storetest.ReadAll(t, s, "k"); !bytes.Equal(got, body) {
		t.Fatalf("sealed object %q, want %q", got, body)
	}

	g, err := s.PresignGet(ctx, "k", time.Minute, "image/png", "inline")
	if err != nil {
		t.Fatal(err)
	}
	if resp, got := do(t, "GET", g, nil, ""); resp.StatusCode != 200 || !bytes.Equal(got, body) ||
		resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Content-Disposition") != "inline" {
		t.Fatalf("GET: %s %v %q", resp.Status, resp.Header, got)
	}
	if resp, _ := do(t, "HEAD", g, nil, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("HEAD of a presigned GET: %s, want 403", resp.Status)
	}
	if resp, _ := do(t, "PUT", g, body, "image/png"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT to a presigned GET: %s, want 403", resp.Status)
	}
	if resp, _ := do(t, "GET", strings.Replace(g, "/object/", "/incoming/", 1), nil, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET URL moved to the incoming objects: %s, want 403", resp.Status)
	}

	now = now.Add(time.Minute)
	if resp, _ := do(t, "GET", g, nil, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET of an expired URL: %s, want 403", resp.Status)
	}
}

// An upload of another size is deleted by Seal, so that the client may try again.
func TestSealWrongSize(t *testing.T) {
	s := memstore.Serve(t)
	ctx := t.Context()
	u, _, err := s.PresignPut(ctx, "k", 3, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "PUT", u, []byte("abc"), ""); resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	if info, err := s.Seal(ctx, "k", 4); !errors.Is(err, store.ErrSize) || info.Size != 3 {
		t.Fatalf("Seal with another size: %+v %v, want ErrSize and the upload's Info", info, err)
	}
	if _, err := s.Seal(ctx, "k", 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Seal after ErrSize: %v, want ErrNotFound", err)
	}
}

func TestCheck(t *testing.T) {
	s := memstore.New("")
	down := errors.New("down")
	s.SetCheckErr(down)
	if err := s.Check(t.Context()); err != down {
		t.Fatalf("Check: %v", err)
	}
	s.SetCheckErr(nil)
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// otherFirst returns tok with its first character replaced by a different one
// (a fixed replacement would equal the token's own first character one time in 32).
func otherFirst(tok string) string {
	if tok[0] == 'X' {
		return "Y" + tok[1:]
	}
	return "X" + tok[1:]
}
