package config

import (
	"os"
	"strings"
	"testing"
)

// A secret file that never ends (token_key_file = "/dev/urandom", taken
// for a way to make a key, or /dev/zero) was read into memory until the
// process ran out of it: secret files are read up to a bound and refused
// past it, naming the file.
func TestSecretFileBounded(t *testing.T) {
	for _, dev := range []string{"/dev/zero", "/dev/urandom"} {
		if _, err := os.Stat(dev); err != nil {
			t.Skip(err)
		}
		c := Default()
		c.Upload.TokenKeyFile = dev
		err := c.loadSecrets()
		if err == nil || !strings.Contains(err.Error(), dev) || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("token_key_file = %s: %v", dev, err)
		}
	}
}
