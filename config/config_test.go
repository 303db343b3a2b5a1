package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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

// keyBytes is MinTokenKey; the tests below name neither it nor
// LoadTokenKey, so that they run on the code before them too.
const keyBytes = 32

// A token.key shorter than MinTokenKey, such as the empty file a crash
// between creating and writing it leaves, is refused, not used as the HMAC
// key (an empty key makes every token forgeable), and left as it is.
func TestTokenKeyShortFileRefused(t *testing.T) {
	for _, n := range []int{0, 1, keyBytes - 1} {
		c := Default()
		c.Data.Dir = t.TempDir()
		p := filepath.Join(c.Data.Dir, "token.key")
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := c.TokenKeyBytes()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s has %d bytes", p, n)) || !strings.Contains(err.Error(), "Delete it") {
			t.Errorf("%d-byte key file: key %x, err %v", n, k, err)
		}
		if b, _ := os.ReadFile(p); len(b) != n {
			t.Errorf("the %d-byte key file was replaced", n)
		}
	}
}

// A configured key shorter than MinTokenKey bytes is refused.
func TestTokenKeyShortConfiguredRefused(t *testing.T) {
	c := Default()
	c.Data.Dir = t.TempDir()
	c.Upload.TokenKey = strings.Repeat("k", keyBytes-1)
	if k, err := c.TokenKeyBytes(); err == nil || !strings.Contains(err.Error(), "it must be at least 32") {
		t.Errorf("%d-byte key: %q, %v", len(c.Upload.TokenKey), k, err)
	}
	c.Upload.TokenKey += "k"
	if k, err := c.TokenKeyBytes(); err != nil || string(k) != c.Upload.TokenKey {
		t.Errorf("%d-byte key: %q, %v", len(c.Upload.TokenKey), k, err)
	}
	if _, err := os.Stat(filepath.Join(c.Data.Dir, "token.key")); err == nil {
		t.Error("a key file was made while a key is configured")
	}
	// an empty token_key_file is a configured key of 0 bytes, not a reason
	// to make another key in data.dir
	c.Upload.TokenKeyFile = filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(c.Upload.TokenKeyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.loadSecrets(); err != nil {
		t.Fatal(err)
	}
	if k, err := c.TokenKeyBytes(); err == nil || !strings.Contains(err.Error(), "the token key is 0 bytes; it must be at least 32") {
		t.Errorf("empty token_key_file: %q, %v", k, err)
	}
	if _, err := os.Stat(filepath.Join(c.Data.Dir, "token.key")); err == nil {
		t.Error("a key file was made for an empty token_key_file")
	}
}

// Starts at once on a new data.dir all get the one whole key that ends up
// in token.key (the old code could hand a start the file another had
// created but not yet written: an empty key), mode 0600, and leave no
// temporary file.
func TestTokenKeyCreatedOnce(t *testing.T) {
	const rounds, starts = 50, 8
	for range rounds {
		c := Default()
		c.Data.Dir = filepath.Join(t.TempDir(), "data")
		keys := make([][]byte, starts)
		errs := make([]error, starts)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range starts {
			wg.Go(func() {
				<-start
				keys[i], errs[i] = c.TokenKeyBytes()
			})
		}
		close(start)
		wg.Wait()
		onDisk, err := os.ReadFile(filepath.Join(c.Data.Dir, "token.key"))
		if err != nil || len(onDisk) != keyBytes {
			t.Fatalf("token.key: %x, %v", onDisk, err)
		}
		for i := range starts {
			if errs[i] != nil || !bytes.Equal(keys[i], onDisk) {
				t.Fatalf("start %d got key %x (%v); token.key holds %x", i, keys[i], errs[i], onDisk)
			}
		}
		entries, _ := os.ReadDir(c.Data.Dir)
		if len(entries) != 1 {
			t.Fatalf("data.dir holds %v", entries)
		}
		if st, _ := os.Stat(filepath.Join(c.Data.Dir, "token.key")); st.Mode().Perm() != 0o600 {
			t.Fatalf("token.key mode %v", st.Mode())
		}
	}
}

// The defaults bound what one account keeps for ever (purposes permanent and
// profile never expire): a user quota, not only a daily one.
func TestDefaultsBoundStoredBytesPerUser(t *testing.T) {
	d := Default()
	if d.Upload.UserQuota <= 0 || d.Upload.UserQuota < d.Upload.DailyQuota {
		t.Fatalf("default user_quota %d: want a bound of at least the daily quota %d", d.Upload.UserQuota, d.Upload.DailyQuota)
	}
}
