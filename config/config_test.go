package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The example documents every key with its default; if they drift, one of them lies.
func TestExampleIsDefault(t *testing.T) {
	c, err := Parse(Example)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(c, want) {
		t.Fatalf("example config differs from Default():\n got %+v\nwant %+v", c, want)
	}
	// every field of Config appears as a key in the example
	for _, key := range keys(reflect.TypeOf(Config{}), "") {
		i := strings.LastIndex(key, ".")
		section, name := key[:i], key[i+1:]
		if !strings.Contains(string(Example), "["+section+"]") || !strings.Contains(string(Example), "\n"+name+" = ") {
			t.Errorf("key %s is not documented in mediaslot.example.toml", key)
		}
	}
}

func keys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := prefix + f.Tag.Get("toml")
		if f.Type.Kind() == reflect.Struct {
			out = append(out, keys(f.Type, name+".")...)
		} else {
			out = append(out, name)
		}
	}
	return out
}

func TestParseUnknownKey(t *testing.T) {
	_, err := Parse([]byte("[upload]\nmax_filesize = 5\n"))
	if err == nil || !strings.Contains(err.Error(), "max_filesize") {
		t.Fatalf("want error naming the unknown key, got %v", err)
	}
}

func TestLoadResolvesPathsAndSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "m.toml")
	err := os.WriteFile(cfg, []byte(`
[component]
jid = "upload.example.net"
secret_file = "secret"
[upload]
slot_lifetime = "2m"
[store]
dir = "files"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Component.Secret != "fromfile" {
		t.Errorf("secret = %q", c.Component.Secret)
	}
	if c.Store.Dir != filepath.Join(dir, "files") {
		t.Errorf("store.dir = %q", c.Store.Dir)
	}
	if time.Duration(c.Upload.SlotLifetime) != 2*time.Minute {
		t.Errorf("slot_lifetime = %v", c.Upload.SlotLifetime)
	}
	if got := c.Domains(); !reflect.DeepEqual(got, []string{"example.net"}) {
		t.Errorf("default allowed domains = %v", got)
	}
	t.Setenv(EnvComponentSecret, "fromenv")
	if c, err = Load(cfg); err != nil || c.Component.Secret != "fromenv" {
		t.Errorf("env secret: %q %v", c.Component.Secret, err)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Default()
	c.Component.JID = "me@upload.example.net"
	c.Upload.MaxFileSize = 0
	c.HTTP.PublicURL = "ftp://x"
	c.Relay.SenderShare = 1.5
	c.Relay.MaxUnseenBytes = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"component.jid", "component.secret", "max_file_size", "public_url", "sender_share", "max_unseen_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestTokenKeyPersists(t *testing.T) {
	c := Default()
	c.Data.Dir = t.TempDir()
	k1, err := c.TokenKeyBytes()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := c.TokenKeyBytes()
	if err != nil || string(k1) != string(k2) || len(k1) != 32 {
		t.Fatalf("key not stable: %x %x %v", k1, k2, err)
	}
}
