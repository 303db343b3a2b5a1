package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// [data] backend and dsn: bbolt by default, postgres needs a dsn, the
// password comes from the environment, a file or the config (in that
// order) and goes into the connection string, never shown in an error.
func TestDataBackend(t *testing.T) {
	valid := func(data string) (Config, error) {
		t.Helper()
		c, err := Parse([]byte("[component]\nsecret = \"s\"\n[data]\n" + data))
		if err != nil {
			t.Fatal(err)
		}
		return c, c.Validate()
	}
	if c, err := valid(""); err != nil || c.Data.Backend != BackendBbolt {
		t.Fatalf("default: %q, %v", c.Data.Backend, err)
	}
	for data, want := range map[string]string{
		`backend = "postgres"`:      "data.dsn must name",
		`backend = "mysql"`:         `data.backend "mysql" is unknown`,
		`dsn = "postgres://u@h/db"`: `set backend = "postgres"`,
		"backend = \"postgres\"\ndsn = \"postgres://u:hunter2@h:x/db\"":                  "data.dsn is not a valid URL",
		"backend = \"postgres\"\ndsn = \"postgres://h/db\"\npassword = \"hunter2\"":      "names no user",
		"backend = \"postgres\"\ndsn = \"postgres://u:pw@h/db\"\npassword = \"hunter2\"": "keep one",
	} {
		_, err := valid(data)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", data, err, want)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", data, err)
		}
	}

	for dsn, want := range map[string]string{
		"postgres://ms@db:5432/ms?sslmode=verify-full": "postgres://ms:p%40ss%27w%5Cd@db:5432/ms?sslmode=verify-full",
		"host=db dbname=ms user=ms":                    `host=db dbname=ms user=ms password='p@ss\'w\\d'`,
	} {
		got, err := Data{DSN: dsn, Password: `p@ss'w\d`}.ConnString()
		if err != nil || got != want {
			t.Errorf("ConnString(%s) = %s, %v; want %s", dsn, got, err, want)
		}
	}
	if got, _ := (Data{DSN: "postgres://u:inline@h/db"}).ConnString(); got != "postgres://u:inline@h/db" {
		t.Errorf("a DSN with its own password: %s", got)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m.toml")
	err := os.WriteFile(path, []byte("[component]\nsecret = \"s\"\n[data]\nbackend = \"postgres\"\n"+
		"dsn = \"postgres://ms@db/ms\"\npassword = \"inconfig\"\npassword_file = \"pw\"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Data.Password != "fromfile" {
		t.Fatalf("password_file: %q, %v", c.Data.Password, err)
	}
	t.Setenv(EnvDataPassword, "fromenv")
	if c, err = Load(path); err != nil || c.Data.Password != "fromenv" {
		t.Fatalf("%s: %q, %v", EnvDataPassword, c.Data.Password, err)
	}
}
