package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/config"
)

// serve refuses a token.key shorter than a key (the empty file of a crash
// between creating and writing it), which would sign forgeable upload
// URLs, and leaves the file for the operator.
func TestServeRefusesShortTokenKey(t *testing.T) {
	cfg, _ := dbConfig(t, t.TempDir())
	key := filepath.Join(filepath.Dir(cfg), "data", "token.key")
	if err := os.WriteFile(key, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := serveChild(t, cfg)
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, key+" has 0 bytes; a token key has 32") ||
		!strings.Contains(stderr, "Delete it") {
		t.Errorf("want exit 1 and the error, got %d:\n%s", code, stderr)
	}
	if b, err := os.ReadFile(key); err != nil || len(b) != 0 {
		t.Errorf("token.key after: %x %v", b, err)
	}
}

// --check-config's token key check fails on a short key file and a short
// configured key, and creates nothing.
func TestCheckTokenKey(t *testing.T) {
	c := config.Default()
	c.Data.Dir = t.TempDir()
	if _, detail, err := checkTokenKey(c); err != nil || !strings.Contains(detail, "does not exist yet") {
		t.Errorf("no key file: %q %v", detail, err)
	}
	if err := os.WriteFile(c.TokenKeyPath(), []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := checkTokenKey(c); err == nil || !strings.Contains(err.Error(), "has 10 bytes; a token key has 32") {
		t.Errorf("10-byte key file: %v", err)
	}
	if err := os.WriteFile(c.TokenKeyPath(), []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, detail, err := checkTokenKey(c); err != nil || !strings.HasSuffix(detail, "token.key (32 bytes)") {
		t.Errorf("32-byte key file: %q %v", detail, err)
	}
	c.Upload.TokenKey = "only-twenty-chars..."
	if _, _, err := checkTokenKey(c); err == nil || !strings.Contains(err.Error(), "the token key is 20 bytes; it must be at least 32") {
		t.Errorf("20-byte configured key: %v", err)
	}
}
