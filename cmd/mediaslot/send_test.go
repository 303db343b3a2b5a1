package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/client"
)

func TestExitCodes(t *testing.T) {
	tooLarge := &client.StanzaError{Type: "modify", Condition: "not-acceptable", FileTooLarge: true, MaxFileSize: 10}
	forbidden := &client.StanzaError{Type: "auth", Condition: "forbidden"}
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w (not-authorized): bad", client.ErrAuth), exitAuth},
		{fmt.Errorf("%w: 127.0.0.1:1: refused", client.ErrUnreachable), exitUnreachable},
		{fmt.Errorf("%w on localhost", client.ErrNoService), exitNoService},
		{tooLarge, exitTooLarge},
		{fmt.Errorf("%w: a.bin is 11 bytes", client.ErrFileTooLarge), exitTooLarge},
		{forbidden, exitRefused},
		{&client.HTTPError{Method: "PUT", Status: 403}, exitRefused},
		// a bounce is the recipient's refusal, whatever its condition
		{errors.Join(&client.RecipientError{To: "x@y", Err: forbidden}), exitRecipient},
		{fmt.Errorf("%w: IQ", client.ErrTimeout), exitTimeout},
		{context.DeadlineExceeded, exitTimeout},
		{fmt.Errorf("3 %w on x", errConformance), exitConformance},
		{errors.New("disk full"), 1},
	} {
		if got := exitCode(c.err); got != c.code {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.code)
		}
	}
}

func newLoginFlags(t *testing.T, args ...string) (*flag.FlagSet, *loginFlags) {
	t.Helper()
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var l loginFlags
	l.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs, &l
}

func TestPasswordSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  string
		args []string
		want string // "" = usage error
	}{
		{"from-env", nil, "from-env"},
		{"from-env", []string{"--password", "from-flag"}, "from-flag"},
		{"from-env", []string{"--password-file", file}, "from-file"},
		{"", []string{"--password-file", file, "--password", "x"}, ""},
		{"", nil, ""},
		{"", []string{"--password-file", file + ".missing"}, ""},
	} {
		t.Setenv("MEDIASLOT_PASSWORD", c.env)
		fs, l := newLoginFlags(t, append([]string{"--jid", "alice@example.net"}, c.args...)...)
		var stderr bytes.Buffer
		opt, err := l.options(fs, &stderr)
		switch {
		case c.want == "" && !errors.Is(err, errUsage):
			t.Errorf("%v with env %q: %v, want a usage error", c.args, c.env, err)
		case c.want == "" && strings.Count(stderr.String(), "\n") != 1:
			t.Errorf("%v: usage error not one line: %q", c.args, stderr.String())
		case c.want != "" && (err != nil || opt.Password != c.want):
			t.Errorf("%v with env %q: password %q, %v; want %q", c.args, c.env, opt.Password, err, c.want)
		}
	}
}

func TestLoginNeedsAccountJID(t *testing.T) {
	t.Setenv("MEDIASLOT_PASSWORD", "x")
	for _, j := range []string{"", "example.net", "@@"} {
		fs, l := newLoginFlags(t, "--jid", j)
		if _, err := l.options(fs, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("--jid %q: %v", j, err)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	to := fs.String("to", "", "")
	direct := fs.Bool("direct", false, "")
	files, err := parseInterleaved(fs, []string{"a.jpg", "--to", "bob@x", "b.png", "--direct", "c d.txt"})
	if err != nil || *to != "bob@x" || !*direct || strings.Join(files, "|") != "a.jpg|b.png|c d.txt" {
		t.Fatalf("files %q to %q direct %t: %v", files, *to, *direct, err)
	}
}

// --to adds up: repeated and comma-separated, in order, blanks dropped.
func TestRepeatedTo(t *testing.T) {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var to listFlag
	fs.Var(&to, "to", "")
	files, err := parseInterleaved(fs, []string{"--to", "a@x", "f", "--to", "b@x, c@x,", "--to=d@x"})
	if err != nil || strings.Join(to, "|") != "a@x|b@x|c@x|d@x" || strings.Join(files, "|") != "f" {
		t.Fatalf("to %q files %q: %v", to, files, err)
	}
}

func TestMediaType(t *testing.T) {
	for _, c := range []struct{ name, head, want string }{
		{"a.png", "", "image/png"},
		{"A.JPG", "", "image/jpeg"},
		{"notes.txt", "hello", "text/plain"},
		{"noext", "\x89PNG\r\n\x1a\n", "image/png"},
		{"noext", "\x00\x01\x02", "application/octet-stream"},
	} {
		if got := mediaType(c.name, []byte(c.head)); got != c.want {
			t.Errorf("mediaType(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// Without a terminal, progress is a plain line per quarter.
func TestPlainProgress(t *testing.T) {
	var out bytes.Buffer
	progress, done := newProgress(&out, "a.bin", 1000)
	for _, n := range []int64{100, 300, 600, 999, 1000} {
		progress(n)
	}
	done()
	small, _ := newProgress(&out, "b.bin", 10)
	small(10) // one read: one line, not four
	want := "uploading a.bin: 25% (300 of 1000 bytes)\nuploading a.bin: 50% (600 of 1000 bytes)\n" +
		"uploading a.bin: 75% (999 of 1000 bytes)\nuploading a.bin: 100% (1000 of 1000 bytes)\n" +
		"uploading b.bin: 100% (10 of 10 bytes)\n"
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}

// Usage problems of the client commands are one line and exit code 2
// (run prints nothing more for errUsage).
func TestClientCommandUsage(t *testing.T) {
	t.Setenv("MEDIASLOT_PASSWORD", "x")
	for _, args := range [][]string{
		{"send", "--jid", "a@x", "file"},
		{"send", "--jid", "a@x", "--to", "b@x"},
		{"send", "--jid", "a@x", "--to", "not a jid@@", "f"},
		{"send", "--jid", "a@x", "--to", "not a jid@@", "--to", "b@x", "f"}, // the first --to counts too
		{"send", "--jid", "a@x", "--to", "b@x", "--service", "@@", "f"},
		{"receive", "--jid", "a@x"},
		{"receive", "--jid", "a@x", "--out", "d", "extra"},
		{"check", "--jid", "a@x", "--service", "@@"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &stderr); code != 2 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
