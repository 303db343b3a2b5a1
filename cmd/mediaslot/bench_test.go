package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mediaslot/internal/dbfile"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "123": 123, "16MiB": 16 << 20, "1GiB": 1 << 30, "5600": 5600, "8K": 8 << 10, "2M": 2 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5MiB", "MiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestPidFlag(t *testing.T) {
	var p pidFlags
	if err := p.Set("mediaslot=42"); err != nil || len(p) != 1 || p[0].Name != "mediaslot" || p[0].PID != 42 {
		t.Fatalf("Set(mediaslot=42): %v, %v", err, p)
	}
	for _, in := range []string{"42", "=42", "a=", "a=x", "a=-1", "a=0"} {
		if err := p.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

// Usage problems end with exit code 2 and one line, before any connection.
func TestBenchUsage(t *testing.T) {
	t.Setenv("MEDIASLOT_PASSWORD", "x")
	for _, args := range [][]string{
		{"bench", "--jid", "a@x"},
		{"bench", "--jid", "a@x", "--service", "u.x", "extra"},
		{"bench", "--jid", "a@x", "--service", "@@"},
		{"bench", "--jid", "a@x", "--service", "u.x", "--rounds", "0"},
		{"bench", "--service", "u.x"},
		{"bench", "relay", "--jid", "a@x", "--service", "u.x", "--to", "b@x"},
		{"bench", "relay", "--jid", "a@x", "--service", "u.x", "--to", "b@x", "--witness", "c@x"},
		{"bench", "fill-queue"},
		{"bench", "report"},
		{"bench", "bare"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &stderr); code != 2 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

func TestBenchHelpListsModes(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--help"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--vs", "--bare-dir", "--pid", "bench relay", "bench fill-queue", "bench bare", "bench report"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestMain lets the test binary stand in for mediaslot when a test starts
// it as a child process (serveBare does), and be the database checker of
// dbfile.Check. Under -race, each child would wait a second at its exit for
// reports from other goroutines (GORACE atexit_sleep_ms): it has none.
func TestMain(m *testing.M) {
	dbfile.Init()
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if os.Getenv("MEDIASLOT_TEST_AS_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// --bare-dir runs the bare handler as a child process: it stores what is
// PUT, serves it back, and is gone after stop.
func TestServeBare(t *testing.T) {
	t.Setenv("MEDIASLOT_TEST_AS_MAIN", "1")
	dir := t.TempDir()
	stop, url, err := serveBare(context.Background(), dir, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, url+"/b.bin", strings.NewReader("hello"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, err = http.Get(url + "/b.bin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("GET: %s %q", resp.Status, body)
	}
	stop()
	if _, err := http.Get(url + "/b.bin"); err == nil {
		t.Fatal("the bare handler still answers after stop")
	}
}

// A child that never reports an address is an error, not a hang.
func TestServeBareChildFails(t *testing.T) {
	t.Setenv("MEDIASLOT_TEST_AS_MAIN", "1")
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := serveBare(context.Background(), filepath.Join(file, "sub"), io.Discard); err == nil || !strings.Contains(err.Error(), "did not report its address") {
		t.Fatalf("serveBare with a bad directory: %v", err)
	}
}
