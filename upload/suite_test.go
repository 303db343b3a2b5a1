package upload

import (
	"bytes"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"mediaslot/store/disk"
	"mediaslot/testserver"
)

// storeCase is one store the slot suite runs on: how its PUT succeeds and how
// its upload authorisation is tampered with.
type storeCase struct {
	name   string
	new    func(t *testing.T) *fixture
	putOK  int
	tamper func(u string) string // breaks the upload authorisation in a PUT URL
	// expire lets the slot s, issued with a lifetime shorter than d,
	// expire: on the fixture's clock, and where the store checks the
	// expiry itself (S3), on the real one too
	expire func(t *testing.T, f *fixture, s Slot, d time.Duration)
}

func flipQueryParam(param string) func(string) string {
	return func(u string) string {
		p, _ := url.Parse(u)
		q := p.Query()
		v := []byte(q.Get(param))
		v[0] ^= 1
		q.Set(param, string(v))
		p.RawQuery = q.Encode()
		return p.String()
	}
}

// presignedExpiry is when the SigV4 presigned URL u expires: X-Amz-Date
// plus X-Amz-Expires seconds.
func presignedExpiry(t *testing.T, u string) time.Time {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("presigned URL %s: %v", u, err)
	}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil {
		t.Fatalf("presigned URL %s: %v", u, err)
	}
	return signed.Add(time.Duration(secs) * time.Second)
}

// TestSlotSuite runs the same upload and download cases on the disk store,
// the in-memory presigning store (memstore) and the S3 store (real S3
// servers), so that they cannot drift apart: an upload with the slot's
// exact length and type succeeds; a wrong length, a wrong type, a tampered
// or an expired authorisation fail and leave nothing to download; unknown
// files are 404 on all.
func TestSlotSuite(t *testing.T) {
	cases := []storeCase{
		{
			name: "disk",
			new: func(t *testing.T) *fixture {
				st, err := disk.New(filepath.Join(t.TempDir(), "files"))
				if err != nil {
					t.Fatal(err)
				}
				return newFixtureWith(t, st, Download{})
			},
			putOK:  201,
			tamper: flipQueryParam("t"),
			expire: func(_ *testing.T, f *fixture, _ Slot, d time.Duration) { f.clock.add(d) },
		},
	}
	cases = append(cases, storeCase{
		name: "disk postgres",
		new: func(t *testing.T) *fixture {
			return newDiskFixture(t, pgRecords(testserver.StartPostgres(t)))
		},
		putOK:  201,
		tamper: flipQueryParam("t"),
		expire: func(_ *testing.T, f *fixture, _ Slot, d time.Duration) { f.clock.add(d) },
	})
	cases = append(cases, storeCase{
		name: "memstore",
		new: func(t *testing.T) *fixture {
			f, _ := memFixture(t, Download{Mode: Proxy})
			return f
		},
		putOK:  200,
		tamper: flipQueryParam("token"),
		expire: func(_ *testing.T, f *fixture, _ Slot, d time.Duration) { f.clock.add(d) },
	})
	for _, srv := range testserver.S3Servers(t) {
		cases = append(cases, storeCase{
			name: "s3 " + srv.Name,
			new: func(t *testing.T) *fixture {
				f := newFixtureWith(t, s3Store(t, srv.Start(t)), Download{Mode: Proxy})
				f.clock.t = time.Now()
				return f
			},
			putOK:  200,
			tamper: flipQueryParam("X-Amz-Signature"),
			expire: func(t *testing.T, f *fixture, s Slot, d time.Duration) {
				f.clock.add(d)
				at := presignedExpiry(t, s.PutURL)
				testserver.WaitFor(t, 10*time.Second, "the presigned URL's expiry", func() bool { return time.Now().After(at) })
			},
		})
	}
	body := bytes.Repeat([]byte("suite "), 700)
	n := int64(len(body))
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			f := sc.new(t)
			refused := func(t *testing.T, s Slot, u string, b []byte, ct string) {
				t.Helper()
				resp, _ := do(t, "PUT", f.url(u), b, ctype(ct))
				if resp.StatusCode < 400 || resp.StatusCode > 499 {
					t.Fatalf("PUT answered %s, want a 4xx refusal", resp.Status)
				}
				if resp, _ := do(t, "GET", f.url(s.GetURL), nil, nil); resp.StatusCode != 404 {
					t.Fatalf("GET after a refused PUT: %s, want 404", resp.Status)
				}
			}
			t.Run("exact", func(t *testing.T) {
				s := f.issue(t, "ok é.txt", n, "text/plain")
				if resp, _ := do(t, "PUT", f.url(s.PutURL), body, ctype("text/plain")); resp.StatusCode != sc.putOK {
					t.Fatalf("PUT: %s, want %d", resp.Status, sc.putOK)
				}
				resp, got := do(t, "GET", f.url(s.GetURL), nil, map[string]string{"Range": "bytes=100-"})
				if resp.StatusCode != 206 || !bytes.Equal(got, body[100:]) {
					t.Fatalf("ranged GET: %s, %d bytes", resp.Status, len(got))
				}
				if resp, _ := do(t, "HEAD", f.url(s.GetURL), nil, nil); resp.StatusCode != 200 || resp.ContentLength != n || resp.Header.Get("Content-Type") != "text/plain" {
					t.Fatalf("HEAD: %s %d %q", resp.Status, resp.ContentLength, resp.Header.Get("Content-Type"))
				}
			})
			t.Run("longer", func(t *testing.T) {
				s := f.issue(t, "a.txt", n, "text/plain")
				refused(t, s, s.PutURL, append(bytes.Clone(body), 'x'), "text/plain")
			})
			t.Run("shorter", func(t *testing.T) {
				s := f.issue(t, "a.txt", n, "text/plain")
				refused(t, s, s.PutURL, body[1:], "text/plain")
			})
			t.Run("wrong type", func(t *testing.T) {
				s := f.issue(t, "a.txt", n, "text/plain")
				refused(t, s, s.PutURL, body, "text/html")
			})
			t.Run("tampered", func(t *testing.T) {
				s := f.issue(t, "a.txt", n, "text/plain")
				refused(t, s, sc.tamper(s.PutURL), body, "text/plain")
			})
			t.Run("expired", func(t *testing.T) {
				f.svc.opt.SlotLifetime = time.Second
				defer func() { f.svc.opt.SlotLifetime = 5 * time.Minute }()
				s := f.issue(t, "a.txt", n, "text/plain")
				sc.expire(t, f, s, 2*time.Second)
				refused(t, s, s.PutURL, body, "text/plain")
			})
			t.Run("unknown", func(t *testing.T) {
				if resp, _ := do(t, "GET", f.srv.URL+"/file/0123456789abcdef0123456789abcdef/x", nil, nil); resp.StatusCode != 404 {
					t.Fatalf("GET of an unknown file: %s", resp.Status)
				}
			})
		})
	}
}
