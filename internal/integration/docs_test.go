package integration

import (
	"os"
	"strings"
	"testing"

	"mediaslot/internal/testserver"
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
