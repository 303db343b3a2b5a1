package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// adminGet GETs path on the admin listener; it fails the test on a
// transport error.
func adminGet(t *testing.T, admin, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape returns the value of every series in /metrics, keyed by its name
// and labels as the text format writes them (`name{label="v"}`).
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	code, body := adminGet(t, admin, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric waits until the series reaches want.
func waitMetric(t *testing.T, admin, series string, want float64) map[string]float64 {
	t.Helper()
	var got map[string]float64
	testserver.WaitFor(t, 10*time.Second, fmt.Sprintf("%s = %v", series, want), func() bool {
		got = scrape(t, admin)
		return got[series] == want
	})
	return got
}

// The admin listener of the real binary: /healthz at once, /readyz 503
// naming the component until it is connected and 200 after, and /metrics
// counting a real client's upload and downloads, a refused slot, relay
// messages delivered at once and queued, the queue itself and a reconnect.
func TestAdminEndpoints(t *testing.T) {
	srv := testserver.Prosody(t)
	srv.Stop() // mediaslot starts first: not ready
	admin := freePort(t)
	m := launchMediaslot(t, srv, fmt.Sprintf("[upload]\nmax_file_size = 100000\n[admin]\nlisten = %q\npprof = true\n", admin))

	testserver.WaitFor(t, 10*time.Second, "/healthz", func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if code, body := adminGet(t, admin, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := adminGet(t, admin, "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine with pprof = true: %d %.80q", code, body)
	}
	code, body := adminGet(t, admin, "/readyz")
	if code != 503 || !strings.Contains(body, "component: not connected to the XMPP server at "+srv.Component) {
		t.Errorf("/readyz before the component connected: %d %q", code, body)
	}
	// The disk store's first probe runs beside the admin listener's start,
	// so store_available may read 0 for its first few milliseconds.
	if got := waitMetric(t, admin, "mediaslot_store_available", 1); got["mediaslot_component_connected"] != 0 {
		t.Errorf("before connecting: component_connected %v", got["mediaslot_component_connected"])
	}

	srv.Start()
	m.waitConnected(1)
	testserver.WaitFor(t, 5*time.Second, "/readyz 200", func() bool { code, _ := adminGet(t, admin, "/readyz"); return code == 200 })
	if code, body := adminGet(t, admin, "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz after connecting: %d %q", code, body)
	}
	got := scrape(t, admin)
	if got["mediaslot_component_connected"] != 1 || got["mediaslot_component_reconnects_total"] != 0 {
		t.Errorf("after connecting: connected %v, reconnects %v", got["mediaslot_component_connected"], got["mediaslot_component_reconnects_total"])
	}
	if got[`mediaslot_build_info{commit="unknown",version="dev"}`] != 1 {
		t.Errorf("no build_info for a plain go build:\n%v", got)
	}

	// an upload: slot, PUT, then GET, HEAD and a Range GET by the client
	file, data := writeRandomFile(t, "metrics.bin", 60_000)
	checkTransfer(t, slixUpload(t, srv, "alice", srv.ComponentJID(), file), data, 201)
	got = waitMetric(t, admin, "mediaslot_uploads_total", 1)
	half := len(data) / 2
	for series, want := range map[string]float64{
		"mediaslot_slots_issued_total":                      1,
		"mediaslot_upload_bytes_total":                      float64(len(data)),
		"mediaslot_upload_duration_seconds_count":           1,
		"mediaslot_stored_bytes":                            float64(len(data)),
		"mediaslot_downloads_total":                         2, // the GET and the Range GET; not the HEAD
		"mediaslot_download_bytes_total":                    float64(len(data) + len(data) - half),
		`mediaslot_slots_refused_total{reason="too_large"}`: 0,
	} {
		if got[series] != want {
			t.Errorf("after one upload: %s = %v, want %v", series, got[series], want)
		}
	}

	// a refused slot: larger than max_file_size
	big, _ := writeRandomFile(t, "big.bin", 150_000)
	if res := slixTry(t, srv, "alice", srv.ComponentJID(), big); res.Error == nil {
		t.Fatal("a slot over max_file_size was granted")
	}
	waitMetric(t, admin, `mediaslot_slots_refused_total{reason="too_large"}`, 1)

	// relay: bob online gets it at once, carol offline is queued
	bob := startSlixRelay(t, srv, "receive", "bob", "1", 20)
	testserver.WaitFor(t, 10*time.Second, "bob online at mediaslot", func() bool {
		return strings.Contains(m.log.String(), "presence from=bob@localhost/")
	})
	payload := thumbnailPayload("http://127.0.0.1/file/x/y.jpg")
	send := startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "m1", payload, "bob", "carol"), 2)
	if r := bob.wait(t); len(r.Messages) != 1 {
		t.Fatalf("bob: %+v", r)
	}
	send.wait(t)
	got = waitMetric(t, admin, "mediaslot_relay_queued_total", 1)
	for series, want := range map[string]float64{
		`mediaslot_relay_delivered_total{path="direct"}`: 1,
		`mediaslot_relay_delivered_total{path="queue"}`:  0,
		"mediaslot_relay_queue_entries":                  1,
		"mediaslot_relay_queue_messages":                 1,
		"mediaslot_relay_queue_recipients":               1,
	} {
		if got[series] != want {
			t.Errorf("after a relay message: %s = %v, want %v", series, got[series], want)
		}
	}
	if got["mediaslot_relay_queue_bytes"] <= 0 || got["mediaslot_relay_queue_oldest_age_seconds"] <= 0 {
		t.Errorf("queue bytes %v, oldest age %v: want both > 0", got["mediaslot_relay_queue_bytes"], got["mediaslot_relay_queue_oldest_age_seconds"])
	}
	// carol comes online: the queue drains
	carol := startSlixRelay(t, srv, "receive", "carol", "1", 20)
	if r := carol.wait(t); len(r.Messages) != 1 {
		t.Fatalf("carol: %+v", r)
	}
	got = waitMetric(t, admin, `mediaslot_relay_delivered_total{path="queue"}`, 1)
	if got["mediaslot_relay_queue_entries"] != 0 || got["mediaslot_relay_queue_oldest_age_seconds"] != 0 {
		t.Errorf("after the drain: entries %v, oldest age %v", got["mediaslot_relay_queue_entries"], got["mediaslot_relay_queue_oldest_age_seconds"])
	}
	// a refused relay message: its thumbnail's cid does not match its data
	bad := strings.Replace(payload, "cid='sha1+", "cid='sha1+00", 1)
	startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, "m2", bad, "bob"), 2).wait(t)
	waitMetric(t, admin, `mediaslot_relay_refused_total{condition="not-acceptable"}`, 1)

	// the link drops and comes back
	srv.Restart()
	m.waitConnected(2)
	got = waitMetric(t, admin, "mediaslot_component_reconnects_total", 1)
	if got["mediaslot_component_connected"] != 1 {
		t.Errorf("after the reconnect: connected %v", got["mediaslot_component_connected"])
	}
}

// checkTransfer checks a slix_upload.py run's PUT, GET, HEAD and Range GET
// (checkSlixFlow checks more, and insists on the default max-file-size).
func checkTransfer(t *testing.T, res slixResult, data []byte, putStatus int) {
	t.Helper()
	if res.PutStatus != putStatus || res.GetStatus != 200 || res.GetSHA256 != sha(data) || res.HeadStatus != 200 || res.RangeStatus != 206 {
		t.Fatalf("upload: PUT %d (want %d), GET %d (same bytes: %v), HEAD %d, Range %d",
			res.PutStatus, putStatus, res.GetStatus, res.GetSHA256 == sha(data), res.HeadStatus, res.RangeStatus)
	}
}
