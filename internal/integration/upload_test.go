package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// slixResult is what testdata/clients/slix_upload.py prints.
type slixResult struct {
	Features          []string          `json:"features"`
	Identities        [][]string        `json:"identities"`
	Forms             []map[string]any  `json:"forms"`
	ListedInItems     bool              `json:"listed_in_items"`
	PutURL            string            `json:"put_url"`
	GetURL            string            `json:"get_url"`
	PutHeaders        map[string]string `json:"put_headers"`
	PutStatus         int               `json:"put_status"`
	GetStatus         int               `json:"get_status"`
	GetSHA256         string            `json:"get_sha256"`
	HeadStatus        int               `json:"head_status"`
	HeadContentLength int64             `json:"head_content_length"`
	HeadContentType   string            `json:"head_content_type"`
	RangeStatus       int               `json:"range_status"`
	RangeContentRange string            `json:"range_content_range"`
	RangeSHA256       string            `json:"range_sha256"`
	Error             *string           `json:"error"`
}

func writeRandomFile(t *testing.T, name string, size int) (path string, data []byte) {
	t.Helper()
	data = make([]byte, size)
	_, _ = rand.Read(data)
	path = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// slixUpload runs the slixmpp client as user against service and decodes
// its report; any error it reports fails the test.
func slixUpload(t *testing.T, srv testserver.XMPP, user, service, file string) slixResult {
	t.Helper()
	res := slixTry(t, srv, user, service, file)
	if res.Error != nil {
		t.Fatalf("slix_upload.py: %s", *res.Error)
	}
	return res
}

// slixTry is slixUpload for runs expected to fail: it returns the report as it is.
func slixTry(t *testing.T, srv testserver.XMPP, user, service, file string) slixResult {
	t.Helper()
	py := testserver.RequirePython(t, "slixmpp", "aiohttp")
	host, port, _ := strings.Cut(srv.C2SAddr(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, testserver.Testdata(t, "clients", "slix_upload.py"),
		srv.JID(user), user, host, port, service, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slix_upload.py: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	var res slixResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("slix_upload.py output: %v\n%s\nstderr: %s", err, out, stderr.String())
	}
	return res
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkSlixUpload asserts the whole discover, slot, PUT, GET, HEAD, Range
// flow, with a PUT answered 201 (mediaslot's own front).
func checkSlixUpload(t *testing.T, res slixResult, data []byte, wantType string) {
	t.Helper()
	checkSlixFlow(t, res, data, wantType, 201)
}

// checkSlixFlow is checkSlixUpload for a PUT that answers putStatus (S3: 200).
func checkSlixFlow(t *testing.T, res slixResult, data []byte, wantType string, putStatus int) {
	t.Helper()
	if !contains(res.Features, "urn:xmpp:http:upload:0") {
		t.Errorf("features %v lack urn:xmpp:http:upload:0", res.Features)
	}
	if len(res.Identities) == 0 || res.Identities[0][0] != "store" || res.Identities[0][1] != "file" {
		t.Errorf("identities %v, want store/file", res.Identities)
	}
	formOK := false
	for _, f := range res.Forms {
		v, _ := f["values"].(map[string]any)
		if f["type"] == "result" && fmt.Sprint(v["FORM_TYPE"]) == "[urn:xmpp:http:upload:0]" && fmt.Sprint(v["max-file-size"]) == "104857600" {
			formOK = true
		}
	}
	if !formOK {
		t.Errorf("no result form with FORM_TYPE urn:xmpp:http:upload:0 and max-file-size 104857600: %v", res.Forms)
	}
	if !res.ListedInItems {
		t.Errorf("component not listed in the server's disco#items")
	}
	if len(res.PutHeaders) != 0 {
		t.Errorf("slot asks for headers %v; authorisation belongs in the URL", res.PutHeaders)
	}
	if res.PutStatus != putStatus {
		t.Errorf("PUT status %d, want %d", res.PutStatus, putStatus)
	}
	if res.GetStatus != 200 || res.GetSHA256 != sha(data) {
		t.Errorf("GET status %d, sha %s, want 200 and %s", res.GetStatus, res.GetSHA256, sha(data))
	}
	if res.HeadStatus != 200 || res.HeadContentLength != int64(len(data)) || res.HeadContentType != wantType {
		t.Errorf("HEAD %d length %d type %q, want 200 %d %q", res.HeadStatus, res.HeadContentLength, res.HeadContentType, len(data), wantType)
	}
	half := len(data) / 2
	if want := fmt.Sprintf("bytes %d-%d/%d", half, len(data)-1, len(data)); res.RangeStatus != 206 || res.RangeContentRange != want || res.RangeSHA256 != sha(data[half:]) {
		t.Errorf("Range: %d %q sha %s, want 206 %q %s", res.RangeStatus, res.RangeContentRange, res.RangeSHA256, want, sha(data[half:]))
	}
}

func TestSlixmppUploadDownload(t *testing.T) { forEachBackend(t, testSlixmppUploadDownload) }

func testSlixmppUploadDownload(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, backend)
	file, data := writeRandomFile(t, "photo été.jpg", 300_000)
	res := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
	checkSlixUpload(t, res, data, "image/jpeg")
	if !strings.HasPrefix(res.GetURL, m.HTTP+"/file/") || !strings.HasSuffix(res.GetURL, "/photo%20%C3%A9t%C3%A9.jpg") {
		t.Errorf("GET URL %s: want %s/file/<id>/photo%%20%%C3%%A9t%%C3%%A9.jpg (escaped once)", res.GetURL, m.HTTP)
	}
}

// The component survives a restart of the XMPP server: it reconnects by
// itself and serves again, and files uploaded before stay downloadable.
func TestProsodyRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		srv := testserver.Prosody(t)
		m := startMediaslot(t, srv, backend)
		file, data := writeRandomFile(t, "before.bin", 50_000)
		before := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
		checkSlixUpload(t, before, data, "application/octet-stream")

		srv.Restart()
		m.waitConnected(2)
		file2, data2 := writeRandomFile(t, "after.txt", 70_000)
		checkSlixUpload(t, slixUpload(t, srv, "bob", srv.ComponentJID(), file2), data2, "text/plain")
		resp, err := http.Get(before.GetURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); sha(b) != sha(data) {
			t.Fatalf("file uploaded before the restart changed or vanished: %s, %d bytes", resp.Status, len(b))
		}
		// and once more while the server is down for a moment
		since := len(m.log.String())
		srv.Stop()
		m.waitLinkDown(since, 3) // the drop and two failed reconnection attempts
		srv.Start()
		m.waitConnected(3)
		checkSlixUpload(t, slixUpload(t, srv, "carol", srv.ComponentJID(), file2), data2, "text/plain")
	})
}

// mediaslot may start before the XMPP server: it keeps trying and connects
// once the server is up.
func TestStartsBeforeServer(t *testing.T) {
	srv := testserver.Prosody(t)
	srv.Stop()
	m := launchMediaslot(t, srv, "")
	testserver.WaitFor(t, 10*time.Second, "a failed connection attempt", func() bool {
		return strings.Contains(m.log.String(), "component link down")
	})
	srv.Start()
	m.waitConnected(1)
	file, data := writeRandomFile(t, "late.txt", 1000)
	checkSlixUpload(t, slixUpload(t, srv, "alice", srv.ComponentJID(), file), data, "text/plain")
}

// go-sendxmpp discovers the service itself (server disco#items, then
// disco#info of each item), uploads, and sends the URL to the recipient, who
// is online and downloads identical bytes.
func TestGoSendxmpp(t *testing.T) { forEachBackend(t, testGoSendxmpp) }

func testGoSendxmpp(t *testing.T, backend string) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, backend)
	for _, c := range []struct{ from, to string }{{"alice", "bob"}, {"bob", "alice"}} {
		t.Run(c.from+"_to_"+c.to, func(t *testing.T) { goSendxmpp(t, srv, m, c.from, c.to) })
	}
}

// goSendxmpp uploads a file with go-sendxmpp -h from one user to another who
// is online (listening with go-sendxmpp -l) and checks that the URL they
// receive downloads identical bytes.
func goSendxmpp(t *testing.T, srv testserver.XMPP, m *mediaslot, from, to string) {
	t.Helper()
	bin := testserver.RequireTool(t, "go-sendxmpp")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listen := exec.CommandContext(ctx, bin, "-u", srv.JID(to), "-p", to, "-j", srv.C2SAddr(), "-n", "-l")
	out, err := listen.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = listen.Wait() }()
	urls := make(chan string, 4)
	go func() {
		re := regexp.MustCompile(`http://127\.0\.0\.1:\d+/file/[0-9a-f]{32}/\S+`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u := re.FindString(sc.Text()); u != "" {
				urls <- u
			}
		}
	}()
	// mod_privilege forwards the recipient's available presence to the component
	seen := strings.Count(m.log.String(), "presence from="+srv.JID(to)+"/")
	testserver.WaitFor(t, 10*time.Second, to+" online", func() bool {
		return strings.Count(m.log.String(), "presence from="+srv.JID(to)+"/") > seen
	})

	file, data := writeRandomFile(t, from+"-holiday.mp4", 200_000)
	send := exec.Command(bin, "-u", srv.JID(from), "-p", from, "-j", srv.C2SAddr(), "-n", "-h", file, srv.JID(to))
	if b, err := send.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp -h: %v\n%s", err, b)
	}
	var u string
	select {
	case u = <-urls:
	case <-time.After(15 * time.Second):
		t.Fatal("recipient did not receive the URL within 15 s")
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || sha(b) != sha(data) {
		t.Fatalf("download of %s: %s, %d bytes, want %d identical bytes", u, resp.Status, len(b), len(data))
	}
}
