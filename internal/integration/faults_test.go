package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/testserver"
)

// Faults with real processes (issue 6, point 6): the XMPP server restarting
// under load, the store going away, and SIGTERM in the middle of uploads.

// dialClient logs user in with mediaslot's own c2s client.
func dialClient(t *testing.T, srv testserver.XMPP, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{JID: jid.MustParse(srv.JID(user)), Password: user, Server: srv.C2SAddr(), Insecure: true})
	if err != nil {
		t.Fatalf("%s: login: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// upload requests a slot from the component and PUTs data; it returns the
// slot and the PUT's status (an HTTP refusal is a status, not an error).
func upload(ctx context.Context, c *client.Client, srv testserver.XMPP, name string, data []byte) (client.Slot, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	slot, err := c.RequestSlot(ctx, jid.MustParse(srv.ComponentJID()), client.File{Name: name, Size: int64(len(data)), ContentType: "application/octet-stream"})
	if err != nil {
		return slot, 0, err
	}
	code, err := c.Upload(ctx, slot, bytes.NewReader(data), int64(len(data)), "application/octet-stream", nil)
	var he *client.HTTPError
	if errors.As(err, &he) {
		err = nil
	}
	return slot, code, err
}

func mustUpload(t *testing.T, c *client.Client, srv testserver.XMPP, name string, data []byte) client.Slot {
	t.Helper()
	slot, code, err := upload(context.Background(), c, srv, name, data)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("upload %s: status %d, %v", name, code, err)
	}
	return slot
}

// download GETs u and returns the status and body.
func download(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// logTimes returns the time= stamps of the log lines containing substr.
func logTimes(t *testing.T, log, substr string) []time.Time {
	t.Helper()
	var ts []time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, substr) {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("no time in log line %q: %v", line, err)
		}
		ts = append(ts, at)
	}
	return ts
}

// relayTo queues n media messages from sender to to through the relay, one
// by one, with bodies "<prefix> 0", "<prefix> 1", ...
func relayTo(t *testing.T, sender *client.Client, srv testserver.XMPP, to, prefix string, n int) {
	t.Helper()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := sender.SendMedia(ctx, client.Media{URL: fmt.Sprintf("http://127.0.0.1/file/%s-%d/x.jpg", prefix, i), Name: "x.jpg", MediaType: "image/jpeg", Size: 1},
			client.Delivery{To: []jid.JID{jid.MustParse(srv.JID(to))}, Relay: jid.MustParse(srv.ComponentJID())})
		cancel()
		if err != nil {
			t.Fatalf("relaying to %s: %v", to, err)
		}
	}
}

// checkRelayed logs carol in and requires that she receives the n
// messages of relayTo, in order, each from the queue (with the component's
// delay).
func checkRelayed(t *testing.T, srv testserver.XMPP, prefix string, n int) {
	t.Helper()
	got := startSlixRelay(t, srv, "receive", "carol", fmt.Sprint(n), 20).wait(t)
	if got.Error != nil {
		t.Fatalf("carol: %+v", got)
	}
	msgs := got.Messages
	if len(msgs) != n {
		t.Fatalf("got %d relayed messages, want %d: %v", len(msgs), n, msgs)
	}
	for i, msg := range msgs {
		if want := fmt.Sprintf("/file/%s-%d/x.jpg", prefix, i); !strings.Contains(msg, want) {
			t.Errorf("message %d lacks %s (lost or out of order): %s", i, want, msg)
		}
		if !strings.Contains(msg, "urn:xmpp:delay") || !strings.Contains(msg, srv.ComponentJID()) {
			t.Errorf("message %d did not come from the queue: %s", i, msg)
		}
	}
}

// pause is a load client's pace between failed attempts (a server that is
// down refuses at once): not a wait for an event; it ends with the load.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// load keeps requesting slots and uploading as several users, logging in
// again whenever the stream breaks, until stop is called.
type load struct {
	mu       sync.Mutex
	ok       []time.Time // completed uploads (201)
	failures int
	lastErr  error
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, srv testserver.XMPP, users ...string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	data := bytes.Repeat([]byte("load "), 800) // 4 kB
	for _, user := range users {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var c *client.Client
			defer func() {
				if c != nil {
					_ = c.Close()
				}
			}()
			for ctx.Err() == nil {
				if c == nil {
					dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
					var err error
					c, err = client.Dial(dctx, client.Options{JID: jid.MustParse(srv.JID(user)), Password: user, Server: srv.C2SAddr(), Insecure: true})
					dcancel()
					if err != nil {
						l.fail(err)
						c = nil
						pause(ctx, 100*time.Millisecond)
						continue
					}
				}
				_, code, err := upload(ctx, c, srv, user+".bin", data)
				switch {
				case err == nil && code == http.StatusCreated:
					l.mu.Lock()
					l.ok = append(l.ok, time.Now())
					l.mu.Unlock()
				case err == nil:
					l.fail(fmt.Errorf("PUT answered %d", code))
				default:
					l.fail(err)
					select {
					case <-c.Done(): // the server went away: log in again
						_ = c.Close()
						c = nil
					default:
						pause(ctx, 50*time.Millisecond) // e.g. the component is not connected
					}
				}
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) fail(err error) {
	l.mu.Lock()
	l.failures++
	l.lastErr = err
	l.mu.Unlock()
}

func (l *load) end() { l.stop(); l.wg.Wait() }

// since counts the uploads completed after t0.
func (l *load) since(t0 time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.ok {
		if at.After(t0) {
			n++
		}
	}
	return n
}

// waitAccepting returns when addr accepts a TCP connection, polling every 5 ms.
func waitAccepting(addr string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			at := time.Now()
			c.Close()
			return at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// relaunchDefaultBackoff restarts mediaslot on its config without the short
// reconnect_max the other tests use, so that the default backoff is measured.
func relaunchDefaultBackoff(t *testing.T, m *mediaslot) *mediaslot {
	t.Helper()
	m.stop()
	b, err := os.ReadFile(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(b), "reconnect_max = \"1s\"\n", "", 1)
	if conf == string(b) {
		t.Fatal("launchMediaslot no longer sets reconnect_max; update this test")
	}
	if err := os.WriteFile(m.Config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return restartMediaslot(t, m)
}

// Prosody restarts while clients keep requesting slots and uploading, and
// stays down until the reconnection backoff has grown to its cap.
// With the default backoff the component is back within 5 s of Prosody's
// component port accepting again, the load resumes, mediaslot never
// crashes, and the relay messages queued before the restart all arrive,
// in order.
func TestFaultServerRestartUnderLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		srv := testserver.Prosody(t)
		m := relaunchDefaultBackoff(t, startMediaslot(t, srv, backend))
		testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })

		alice := dialClient(t, srv, "alice")
		relayTo(t, alice, srv, "carol", "restart", 3)
		testserver.WaitFor(t, 5*time.Second, "3 messages queued for carol", func() bool {
			return strings.Count(m.log.String(), "queued=1") == 3
		})
		_ = alice.Close()

		l := startLoad(t, srv, "bob", "dave")
		testserver.WaitFor(t, 10*time.Second, "the load running", func() bool { return l.since(time.Time{}) >= 10 })

		connected := strings.Count(m.log.String(), "component connected")
		since := len(m.log.String())
		srv.Stop()
		// down until the backoff has grown to its cap: two failed attempts in a
		// row with the same retry_in (a cap too large to reach within 20 s
		// fails here)
		testserver.WaitFor(t, 20*time.Second, "the reconnection backoff at its cap", func() bool {
			var retries []string
			for _, l := range strings.Split(m.log.String()[since:], "\n") {
				if _, after, ok := strings.Cut(l, "component link down"); ok {
					if _, v, ok := strings.Cut(after, "retry_in="); ok {
						retries = append(retries, strings.Fields(v)[0])
					}
				}
			}
			n := len(retries)
			return n >= 2 && retries[n-1] == retries[n-2]
		})
		up := make(chan time.Time, 1)
		go func() {
			at, err := waitAccepting(srv.ComponentAddr(), 20*time.Second)
			if err != nil {
				t.Errorf("component port: %v", err)
			}
			up <- at
		}()
		srv.Start()
		upAt := <-up
		m.waitConnected(connected + 1)
		back := logTimes(t, m.log.String(), "component connected")[connected].Sub(upAt)
		t.Logf("component connected %v after Prosody's component port accepted (%d uploads before the restart, %d failed attempts meanwhile)",
			back.Round(time.Millisecond), l.since(time.Time{}), l.failures)
		if back > 5*time.Second {
			t.Errorf("component back %v after the server, want within 5 s", back)
		}
		testserver.WaitFor(t, 15*time.Second, "uploads after the restart", func() bool { return l.since(upAt) >= 10 })
		l.end()
		if m.cmd.ProcessState != nil {
			t.Fatalf("mediaslot exited: %v", m.cmd.ProcessState)
		}

		checkRelayed(t, srv, "restart", 3)
	})
}

// S3 goes away while mediaslot runs: after the next store check slot
// requests are refused with wait/service-unavailable, downloads fail
// cleanly, nothing crashes; when the server is back on the same port and
// data, slots are issued again and the old file is served again.
func TestFaultS3Down(t *testing.T) {
	srv := testserver.Prosody(t)
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) { testFaultS3Down(t, srv, gw) })
}

func testFaultS3Down(t *testing.T, srv *testserver.Server, gw *testserver.S3) {
	conf := strings.Replace(gw.StoreConfig("proxy"), "type = \"s3\"\n", "type = \"s3\"\ncheck_interval = \"200ms\"\n", 1)
	m := startMediaslot(t, srv, conf)
	file, data := writeRandomFile(t, "before.jpg", 100_000)
	before := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
	checkSlixFlow(t, before, data, "image/jpeg", 200)

	gw.Stop()
	testserver.WaitFor(t, 5*time.Second, "the store check noticing", func() bool {
		return strings.Contains(m.log.String(), "file store unavailable")
	})
	res := slixTry(t, srv, "alice", srv.ComponentJID(), file)
	if res.Error == nil || !strings.Contains(*res.Error, "wait/service-unavailable") {
		t.Errorf("slot request with S3 down: %v, want wait/service-unavailable", res.Error)
	}
	if code, _ := download(t, before.GetURL); code < 500 {
		t.Errorf("download with S3 down: %d, want a 5xx", code)
	}
	if m.cmd.ProcessState != nil {
		t.Fatalf("mediaslot exited: %v", m.cmd.ProcessState)
	}

	gw.Start()
	testserver.WaitFor(t, 5*time.Second, "the store check noticing", func() bool {
		return strings.Contains(m.log.String(), "file store available again")
	})
	file2, data2 := writeRandomFile(t, "after.jpg", 50_000)
	checkSlixFlow(t, slixUpload(t, srv, "bob", srv.ComponentJID(), file2), data2, "image/jpeg", 200)
	if code, b := download(t, before.GetURL); code != 200 || sha(b) != sha(data) {
		t.Errorf("file from before the outage: %d, %d bytes", code, len(b))
	}
}

// mount runs mount(8) on dir and unmounts everything mounted there in
// t.Cleanup; it skips the test where mounting is not allowed (no root, no
// CAP_SYS_ADMIN).
func mount(t *testing.T, dir string, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a file system for the store")
	}
	if out, err := exec.Command("mount", append(args, dir)...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount (%v): %s", err, out)
	}
	t.Cleanup(func() {
		for range 3 { // stacked mounts come off one by one
			if exec.Command("umount", dir).Run() != nil {
				break
			}
		}
		if b, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(b), " "+dir+" ") {
			t.Errorf("%s is still mounted", dir)
		}
	})
}

// storeFiles lists the regular files under dir (the objects and any
// temporary files of the disk store).
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, strings.TrimPrefix(p, dir+"/"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The disk store fills up, then turns read-only: PUTs get a clean error
// (507 when full), no partial file stays behind, earlier files stay intact
// and downloadable, and uploads work again once there is room.
func TestFaultDiskStore(t *testing.T) {
	srv := testserver.Prosody(t)
	files := filepath.Join(t.TempDir(), "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, files, "-t", "tmpfs", "-o", "size=1m", "tmpfs")
	m := startMediaslot(t, srv, fmt.Sprintf("[store]\ndir = %q\n", files))
	c := dialClient(t, srv, "alice")

	_, a := writeRandomFile(t, "a.bin", 300_000)
	slotA := mustUpload(t, c, srv, "a.bin", a)

	// Fill the rest and 100 kB more: the server reads the part it could not
	// store (less than net/http's 256 kB) so the client sees the answer.
	var st syscall.Statfs_t
	if err := syscall.Statfs(files, &st); err != nil {
		t.Fatal(err)
	}
	free := int(st.Bavail) * int(st.Bsize)
	_, big := writeRandomFile(t, "big.bin", free+100_000)
	slotB, code, err := upload(context.Background(), c, srv, "big.bin", big)
	if err != nil || code != http.StatusInsufficientStorage {
		t.Errorf("PUT beyond the free space: status %d, %v; want 507", code, err)
	}
	if left := storeFiles(t, files); len(left) != 1 {
		t.Errorf("store holds %v after the failed PUT, want only the first file", left)
	}
	if code, _ := download(t, slotB.GetURL); code != http.StatusNotFound {
		t.Errorf("GET of the failed upload: %d, want 404", code)
	}
	if code, b := download(t, slotA.GetURL); code != 200 || sha(b) != sha(a) {
		t.Errorf("earlier file: %d, %d bytes", code, len(b))
	}
	if !strings.Contains(m.log.String(), "store full") {
		t.Errorf("the full store was not logged")
	}
	_, small := writeRandomFile(t, "small.bin", 100_000)
	mustUpload(t, c, srv, "small.bin", small) // the space of the failed PUT was freed

	// read-only, as after a file system error
	for _, args := range [][]string{{"--bind", files}, {"-o", "remount,bind,ro"}} {
		if out, err := exec.Command("mount", append(args, files)...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v: %s", args, err, out)
		}
	}
	_, code, err = upload(context.Background(), c, srv, "ro.bin", small[:1000])
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("PUT to a read-only store: status %d, %v; want 503", code, err)
	}
	if code, b := download(t, slotA.GetURL); code != 200 || sha(b) != sha(a) {
		t.Errorf("earlier file from the read-only store: %d, %d bytes", code, len(b))
	}
	if out, err := exec.Command("umount", files).CombinedOutput(); err != nil {
		t.Fatalf("umount the read-only bind: %v: %s", err, out)
	}
	mustUpload(t, c, srv, "rw-again.bin", small[:1000])
	if m.cmd.ProcessState != nil {
		t.Fatalf("mediaslot exited: %v", m.cmd.ProcessState)
	}
}

// componentProxy relays the component link to the server and keeps what
// mediaslot sent on its latest connection.
type componentProxy struct {
	addr string
	mu   sync.Mutex
	sent *testserver.LogBuffer
}

func startComponentProxy(t *testing.T, upstream string) *componentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &componentProxy{addr: ln.Addr().String(), sent: &testserver.LogBuffer{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			sent := &testserver.LogBuffer{}
			p.mu.Lock()
			p.sent = sent
			p.mu.Unlock()
			go func() {
				_, _ = io.Copy(io.MultiWriter(up, sent), c)
				_ = up.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				_, _ = io.Copy(c, up)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return p
}

func (p *componentProxy) lastSent() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String()
}

// proxied is a server whose component port is reached through a proxy.
type proxied struct {
	testserver.XMPP
	addr string
}

func (p proxied) ComponentAddr() string { return p.addr }

type putResult struct {
	code int
	err  error
}

// awaitPut waits for a PUT started by startPut, failing the test rather
// than hanging it.
func awaitPut(t *testing.T, res <-chan putResult) putResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("PUT did not finish within 20 s")
		return putResult{}
	}
}

// startPut PUTs to slot from a pipe the test writes the body into.
func startPut(c *client.Client, slot client.Slot, size int) (*io.PipeWriter, <-chan putResult) {
	pr, pw := io.Pipe()
	res := make(chan putResult, 1)
	go func() {
		code, err := c.Upload(context.Background(), slot, pr, int64(size), "application/octet-stream", nil)
		_ = pr.CloseWithError(io.ErrClosedPipe)
		res <- putResult{code, err}
	}()
	return pw, res
}

// SIGTERM with two uploads in progress: the listener stops accepting at
// once and the component closes its stream with </stream:stream>; the
// upload that keeps sending completes (201), the stalled one is cut after
// the grace period; the process exits 0 within 10 s, and a new process on
// the same state opens the bbolt file cleanly, serves the completed file,
// has nothing of the cut one, and delivers the queued relay messages.
func TestFaultSIGTERMDrains(t *testing.T) {
	srv := testserver.Prosody(t)
	proxy := startComponentProxy(t, srv.ComponentAddr())
	m := startMediaslot(t, proxied{srv, proxy.addr}, "")
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	alice := dialClient(t, srv, "alice")
	relayTo(t, alice, srv, "carol", "sigterm", 2)
	testserver.WaitFor(t, 5*time.Second, "2 messages queued for carol", func() bool {
		return strings.Count(m.log.String(), "queued=1") == 2
	})

	_, data := writeRandomFile(t, "a.bin", 1<<20)
	ctx := context.Background()
	svc := jid.MustParse(srv.ComponentJID())
	slotA, err := alice.RequestSlot(ctx, svc, client.File{Name: "a.bin", Size: int64(len(data)), ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	slotB, err := alice.RequestSlot(ctx, svc, client.File{Name: "b.bin", Size: 100_000, ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	pwA, resA := startPut(alice, slotA, len(data))
	pwB, resB := startPut(alice, slotB, 100_000)
	defer pwB.Close()
	if _, err := pwA.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	if _, err := pwB.Write(make([]byte, 10_000)); err != nil {
		t.Fatal(err)
	}
	// both bodies are being read by mediaslot: the disk store writes each
	// into a temporary file of its own
	testserver.WaitFor(t, 10*time.Second, "mediaslot writing both uploads", func() bool {
		tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(m.Config), "files", ".tmp", "put-*"))
		return len(tmp) == 2
	})

	exited := make(chan struct{})
	sigAt := time.Now()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.cmd.Wait(); close(exited) }()
	host := strings.TrimPrefix(m.HTTP, "http://")
	testserver.WaitFor(t, 2*time.Second, "the HTTP listener closed", func() bool {
		c, err := net.DialTimeout("tcp", host, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	testserver.WaitFor(t, 2*time.Second, "the component's </stream:stream>", func() bool {
		return strings.HasSuffix(strings.TrimSpace(proxy.lastSent()), "</stream:stream>")
	})

	// shutdown is under way (listener and stream closed): the rest of the
	// body arrives after it began
	if _, err := pwA.Write(data[len(data)/2:]); err != nil {
		t.Fatalf("the upload in progress was cut at SIGTERM: %v", err)
	}
	_ = pwA.Close()
	if r := awaitPut(t, resA); r.err != nil || r.code != http.StatusCreated {
		t.Errorf("upload in progress at SIGTERM: %d, %v; want 201", r.code, r.err)
	}
	select {
	case <-exited:
	case <-time.After(10*time.Second - time.Since(sigAt)):
		t.Fatalf("mediaslot still running 10 s after SIGTERM")
	}
	took := time.Since(sigAt)
	t.Logf("exited %v after SIGTERM with %v", took.Round(time.Millisecond), m.cmd.ProcessState)
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	_ = pwB.CloseWithError(errors.New("the client gives up")) // the transport waits for the body writer
	if r := awaitPut(t, resB); r.err == nil {
		t.Errorf("the stalled upload was answered %d; want it cut", r.code)
	}
	if !strings.Contains(m.log.String(), "uploads cut short by shutdown") {
		t.Errorf("the cut upload was not logged")
	}

	m2 := restartMediaslot(t, m)
	if code, b := download(t, slotA.GetURL); code != 200 || sha(b) != sha(data) {
		t.Errorf("file completed during shutdown: %d, %d bytes", code, len(b))
	}
	if code, _ := download(t, slotB.GetURL); code != http.StatusNotFound {
		t.Errorf("GET of the cut upload: %d, want 404", code)
	}
	if left := storeFiles(t, filepath.Join(filepath.Dir(m2.Config), "files")); len(left) != 1 {
		t.Errorf("store holds %v, want only the completed file", left)
	}
	checkRelayed(t, srv, "sigterm", 2)
}
