package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mediaslot/config"
	"mediaslot/testserver"
)

// The server snippets of docs/OPERATIONS.md are the ones the integration
// tests run Prosody and ejabberd with.
func TestOperationsSnippetsAreTested(t *testing.T) {
	root := testserver.ModuleRoot(t)
	doc := string(mustRead(t, filepath.Join(root, "docs", "OPERATIONS.md")))

	prosody := string(mustRead(t, testserver.Testdata(t, "prosody", "prosody.cfg.lua")))
	want := strings.TrimSpace(configBlock(t, prosody, "--", "attach snippet"))
	if got := strings.TrimSpace(markedBlock(t, doc, "attach snippet", "lua")); got != want {
		t.Errorf("docs/OPERATIONS.md's Prosody snippet differs from testdata/prosody/prosody.cfg.lua:\n--- doc\n%s\n--- config\n%s", got, want)
	}

	tmpl := string(mustRead(t, testserver.Testdata(t, "ejabberd", "ejabberd.yml.in")))
	ejabberd := testserver.RenderEjabberdConfig(tmpl, ejabberdDocValues)
	for _, name := range []string{"component listener", "privilege module"} {
		if got, want := markedBlock(t, doc, name, "yaml"), configBlock(t, ejabberd, "#", name); got != want {
			t.Errorf("docs/OPERATIONS.md's ejabberd %q differs from testdata/ejabberd/ejabberd.yml.in rendered with %v:\n--- doc\n%s--- template\n%s",
				name, ejabberdDocValues, got, want)
		}
	}
}

// Every mediaslot.toml snippet in the README and docs/ is a valid config
// fragment: a renamed or removed key fails here, not in an operator's hands.
func TestDocsTOMLParses(t *testing.T) {
	root := testserver.ModuleRoot(t)
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"))
	block := regexp.MustCompile("(?s)```toml\n(.*?)```")
	n := 0
	for _, path := range docs {
		for _, m := range block.FindAllStringSubmatch(string(mustRead(t, path)), -1) {
			n++
			// README's snippet is indented inside a list item
			lines := strings.Split(m[1], "\n")
			for i, l := range lines {
				lines[i] = strings.TrimPrefix(l, "   ")
			}
			if _, err := config.Parse([]byte(strings.Join(lines, "\n"))); err != nil {
				t.Errorf("%s: a toml snippet does not parse: %v\n%s", filepath.Base(path), err, m[1])
			}
		}
	}
	if n < 5 {
		t.Errorf("found only %d toml snippets", n)
	}
	if _, err := os.Stat(filepath.Join(root, "docs", "CONFIG.md")); err != nil {
		t.Errorf("the config reference is missing: %v", err)
	}
}
