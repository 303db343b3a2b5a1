package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// The README's Prosody snippet is the one the integration tests run with.
func TestReadmeSnippetIsTested(t *testing.T) {
	readme, err := os.ReadFile(testserver.ModuleRoot(t) + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(testserver.Testdata(t, "prosody", "prosody.cfg.lua"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(configBlock(t, string(cfg), "--", "attach snippet"))
	got := strings.TrimSpace(markedBlock(t, string(readme), "attach snippet", "lua"))
	if got != want {
		t.Fatalf("README snippet differs from testdata/prosody/prosody.cfg.lua:\n--- README\n%s\n--- config\n%s", got, want)
	}
}

// stockProsodyConfig is the config the prosody package installs (Debian).
const stockProsodyConfig = "/etc/prosody/prosody.cfg.lua"

// The README's Prosody snippet is paste-ready: appended as it is to the
// stock prosody.cfg.lua (it names example.net and holds a placeholder
// secret), `prosodyctl check config` passes and says nothing about it.
func TestReadmeSnippetPassesProsodyCheck(t *testing.T) {
	prosodyctl := testserver.RequireTool(t, "prosodyctl")
	stock, err := os.ReadFile(stockProsodyConfig)
	if err != nil {
		if testserver.IntegrationRequired() {
			t.Fatalf("the prosody package's config: %v", err)
		}
		t.Skipf("the prosody package's config: %v", err)
	}
	snippet := markedBlock(t, string(mustRead(t, filepath.Join(testserver.ModuleRoot(t), "README.md"))), "attach snippet", "lua")

	// A copy in a temporary directory, with what prosodyctl needs there:
	// run_as_root (as root it would otherwise check as the prosody user, who
	// cannot read the copy), the conf.d the stock config includes and a
	// certs directory (else it logs an error about it).
	dir := t.TempDir()
	for _, d := range []string{"conf.d", "certs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfg, []byte("run_as_root = true\n"+string(stock)+"\n"+snippet), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(prosodyctl, "--config", cfg, "check", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("prosodyctl check config: %v\n%s", err, out)
	}
	for _, w := range []string{"example.net", "privileged_entities", "component_secret", "privilege"} {
		if strings.Contains(string(out), w) {
			t.Errorf("prosodyctl check config mentions %q:\n%s", w, out)
		}
	}
}

// Docs show config snippets between <!-- BEGIN name --> and <!-- END name -->
// lines; the test configs (testdata/) hold the same lines between BEGIN name
// and END name comments, and tests compare the two, so that what operators
// copy is what the integration tests run with.

// markedBlock returns the fenced block of lang between <!-- BEGIN name -->
// and <!-- END name --> in a Markdown document.
func markedBlock(t *testing.T, doc, name, lang string) string {
	t.Helper()
	begin, end := "<!-- BEGIN "+name+" -->\n```"+lang+"\n", "```\n<!-- END "+name+" -->"
	_, rest, ok := strings.Cut(doc, begin)
	if !ok {
		t.Fatalf("marker %q missing", begin)
	}
	body, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("marker %q missing", end)
	}
	return body
}

// configBlock returns the lines of a test config between "BEGIN name" and
// "END name" comment lines (comment is the config language's "--" or "#").
func configBlock(t *testing.T, cfg, comment, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(cfg, comment+" BEGIN "+name+" ")
	if !ok {
		t.Fatalf("marker %q missing", comment+" BEGIN "+name)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the rest of the BEGIN line
	body, _, ok := strings.Cut(rest, comment+" END "+name)
	if !ok {
		t.Fatalf("marker %q missing", comment+" END "+name)
	}
	return body
}
