package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mediaslot/internal/connlimit"
	"mediaslot/offline"
)

type queue struct {
	s   offline.Stats
	err error
}

func (q queue) Stats() (offline.Stats, error) { return q.s, q.err }

type storeState struct {
	err    error
	stored int64
}

func (s storeState) StoreErr() error             { return s.err }
func (s storeState) StoredBytes() (int64, error) { return s.stored, nil }

type httpState connlimit.Stats

func (s httpState) Stats() connlimit.Stats { return connlimit.Stats(s) }

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	m := New("v1.2.3", "abc1234")
	m.WatchQueue(queue{s: offline.Stats{Entries: 3, Stanzas: 2, Bytes: 900, Recipients: 2, Oldest: time.Now().Add(-time.Minute)}})
	m.WatchStore(storeState{stored: 4096})
	m.WatchHTTP(httpState{Open: 7, RefusedTotal: 2, RefusedPerAddr: 5, AcceptErrors: 300, AcceptFailing: errors.New("accept4: too many open files")})

	m.SlotIssued()
	m.SlotIssued()
	m.SlotRefused("too_large")
	m.Uploaded(1000, 20*time.Millisecond)
	m.Uploaded(500, 0) // confirmed S3 upload: no duration
	m.Downloaded(1000)
	m.Downloaded(0)
	m.LinkChanged(true)
	m.LinkChanged(false)
	m.LinkChanged(true)
	m.RelayAccepted(2, 1)
	m.RelayDrained(1)
	m.RelayRefused("forbidden")

	out := scrape(t, m)
	for _, want := range []string{
		"mediaslot_slots_issued_total 2",
		"mediaslot_uploads_total 2",
		"mediaslot_upload_bytes_total 1500",
		"mediaslot_downloads_total 2",
		"mediaslot_download_bytes_total 1000",
		"mediaslot_component_connected 1",
		"mediaslot_component_reconnects_total 1",
		"mediaslot_relay_queued_total 1",
		`mediaslot_build_info{commit="abc1234",version="v1.2.3"} 1`,
		`mediaslot_slots_refused_total{reason="too_large"} 1`,
		`mediaslot_slots_refused_total{reason="quota"} 0`,
		`mediaslot_upload_duration_seconds_count 1`,
		`mediaslot_relay_delivered_total{path="direct"} 2`,
		`mediaslot_relay_delivered_total{path="queue"} 1`,
		`mediaslot_relay_refused_total{condition="forbidden"} 1`,
		`mediaslot_relay_queue_entries 3`,
		`mediaslot_relay_queue_messages 2`,
		`mediaslot_relay_queue_bytes 900`,
		`mediaslot_relay_queue_recipients 2`,
		`mediaslot_stored_bytes 4096`,
		`mediaslot_store_available 1`,
		`mediaslot_http_connections 7`,
		`mediaslot_http_connections_refused_total{bound="total"} 2`,
		`mediaslot_http_connections_refused_total{bound="per_address"} 5`,
		`mediaslot_http_accept_errors_total 300`,
		`mediaslot_http_accept_failing 1`,
		`go_goroutines `,
		`process_open_fds `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if !strings.Contains(out, "mediaslot_relay_queue_oldest_age_seconds 6") { // 60.x seconds
		t.Errorf("oldest age not about a minute:\n%s", grep(out, "oldest"))
	}
}

// A queue that cannot be read and a store that is down show in the scrape
// without breaking the other metrics.
func TestMetricsStoreDownQueueBroken(t *testing.T) {
	m := New("dev", "unknown")
	m.WatchQueue(queue{err: errors.New("database closed")})
	m.WatchStore(storeState{err: errors.New("bucket does not exist")})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	if !strings.Contains(out, "mediaslot_store_available 0") || !strings.Contains(out, "mediaslot_slots_issued_total 0") {
		t.Errorf("scrape with a broken queue:\n%s", out)
	}
	if strings.Contains(out, "mediaslot_relay_queue_entries ") {
		t.Errorf("queue metrics without a queue")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// docs/OPERATIONS.md lists every metric mediaslot exports, and only those.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := New("dev", "unknown")
	m.WatchQueue(queue{})
	m.WatchStore(storeState{})
	m.WatchHTTP(httpState{})
	m.WatchLease("upload-janitor", func() bool { return true })
	m.RelayRefused("forbidden") // labelled by condition: no series until the first
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		if name := f.GetName(); strings.HasPrefix(name, "mediaslot_") {
			exported[name] = true
			if !strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "`"+name+"{") {
				t.Errorf("%s is not in docs/OPERATIONS.md", name)
			}
		}
	}
	for _, name := range regexp.MustCompile("`(mediaslot_[a-z_]+)[`{]").FindAllStringSubmatch(string(doc), -1) {
		if !exported[name[1]] {
			t.Errorf("docs/OPERATIONS.md lists %s, which mediaslot does not export", name[1])
		}
	}
}
