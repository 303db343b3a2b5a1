package config

import (
	"strings"
	"testing"
)

// A misspelt key is named with its line, never quoted: the line may hold a
// secret, and the error ends up in logs.
func TestUnknownKeyDoesNotQuoteValues(t *testing.T) {
	_, err := Parse([]byte("[component]\nsecrett = \"hunter2-hunter2\"\n[store.s3]\nsecret = \"aws-secret-value\"\n"))
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	msg := err.Error()
	for _, want := range []string{"component.secrett (line 2)", "store.s3.secret (line 4)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "aws-secret-value") {
		t.Errorf("the error quotes a value: %q", msg)
	}
}

func TestAdminListen(t *testing.T) {
	for _, c := range []struct {
		listen string
		pprof  bool
		err    string
	}{
		{"", false, ""},
		{"127.0.0.1:5051", false, ""},
		{"127.0.0.1:5051", true, ""},
		{"", true, "admin.pprof needs admin.listen"},
		{"5051", false, "admin.listen \"5051\" must be host:port"},
		{"127.0.0.1:5050", false, "admin.listen must differ from http.listen"},
	} {
		cfg := Default()
		cfg.Component.Secret = "s"
		cfg.Admin.Listen, cfg.Admin.Pprof = c.listen, c.pprof
		err := cfg.Validate()
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("admin.listen %q, pprof %v: %v, want %q", c.listen, c.pprof, err, c.err)
		}
	}
}
