package integration

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// `make build` stamps the binary with `git describe` and the commit, and
// `mediaslot version` prints them.
func TestMakeBuildSetsVersion(t *testing.T) {
	root := testserver.ModuleRoot(t)
	makeBin := testserver.RequireTool(t, "make")
	out, err := exec.Command(makeBin, "-s", "-n", "-C", root, "build").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(string(out))
	if m == nil || !strings.Contains(m[1], "-X main.version=") || !strings.Contains(m[1], "-X main.commit=") {
		t.Fatalf("make build does not set main.version and main.commit:\n%s", out)
	}
	version, commit := "dev", "unknown"
	if b, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		version = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(b))
	}
	if !strings.Contains(m[1], "main.version="+version) || !strings.Contains(m[1], "main.commit="+commit) {
		t.Errorf("make build's flags %q, want version %s and commit %s", m[1], version, commit)
	}
	// build with exactly those flags, as make build does, but not into bin/
	bin := filepath.Join(t.TempDir(), "mediaslot")
	build := exec.Command("go", "build", "-ldflags", m[1], "-o", bin, "./cmd/mediaslot")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	got, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "mediaslot " + version + " (commit " + commit + ")\n"; string(got) != want {
		t.Errorf("mediaslot version: %q, want %q", got, want)
	}
}
