package integration

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/config"
	"mediaslot/testserver"
)

// unitKeys reads a systemd unit into "Section.Key" -> values.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a key=value line: %q", path, line)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

// contrib/mediaslot.service is hardened the way docs/OPERATIONS.md says,
// and contrib/mediaslot.toml fits it. systemd-analyze, where present,
// verifies the unit and rates its exposure.
func TestSystemdUnit(t *testing.T) {
	root := testserver.ModuleRoot(t)
	unit := filepath.Join(root, "contrib", "mediaslot.service")
	keys := unitKeys(t, unit)
	for key, want := range map[string]string{
		"Service.ExecStart":               "/usr/local/bin/mediaslot serve --config /etc/mediaslot/mediaslot.toml",
		"Service.DynamicUser":             "yes",
		"Service.StateDirectory":          "mediaslot",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.PrivateTmp":              "yes",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.SystemCallFilter":        "@system-service",
		"Service.Restart":                 "on-failure",
		"Service.LoadCredential":          "component.secret:/etc/mediaslot/component.secret",
		"Service.CapabilityBoundingSet":   "",
		"Install.WantedBy":                "multi-user.target",
	} {
		if !contains(keys[key], want) {
			t.Errorf("%s = %q, want %q among them", key, keys[key], want)
		}
	}

	// the config the unit runs with: valid once the credential is there,
	// with its state where StateDirectory puts it
	cfg, err := config.Parse(mustRead(t, filepath.Join(root, "contrib", "mediaslot.toml")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Component.SecretFile != "/run/credentials/mediaslot.service/component.secret" {
		t.Errorf("secret_file %q does not read the unit's credential", cfg.Component.SecretFile)
	}
	if cfg.Data.Dir != "/var/lib/mediaslot" || !strings.HasPrefix(cfg.Store.Dir, "/var/lib/mediaslot/") {
		t.Errorf("data.dir %q and store.dir %q must be in the StateDirectory /var/lib/mediaslot", cfg.Data.Dir, cfg.Store.Dir)
	}
	cfg.Component.Secret = "from the credential"
	if err := cfg.Validate(); err != nil {
		t.Errorf("contrib/mediaslot.toml: %v", err)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze not available (the keys above were checked): %v", err)
	}
	// verify wants ExecStart's binary to exist: point it at the test's build
	b := bytes.ReplaceAll(mustRead(t, unit), []byte("/usr/local/bin/mediaslot"), []byte(binary))
	copyUnit := filepath.Join(t.TempDir(), "mediaslot.service")
	if err := os.WriteFile(copyUnit, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", copyUnit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// exposure 0.0 (locked down) .. 10.0 (unprotected); this unit rates 1.4
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", copyUnit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security rates the unit above 2.0: %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
