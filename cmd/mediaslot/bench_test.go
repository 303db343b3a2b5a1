package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
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
	for _, want := range []string{"--vs", "--bare-dir", "--pid", "bench relay", "bench fill-queue", "bench report"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
