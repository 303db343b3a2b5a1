package config

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIG.md from mediaslot.example.toml")

// referencePath is docs/CONFIG.md, from this package's directory.
var referencePath = filepath.Join("..", "docs", "CONFIG.md")

// docs/CONFIG.md is generated from the example config, so the reference
// cannot drift from the defaults (TestExampleIsDefault keeps the example
// equal to Default()). `go generate ./config` rewrites it.
func TestConfigReference(t *testing.T) {
	want := reference(Example)
	if *update {
		if err := os.WriteFile(referencePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/CONFIG.md is stale: run `go generate ./config`")
	}
}

// keyGroup is one or more keys that share a comment in the example.
type keyGroup struct {
	keys, defaults []string
	doc            []string
}

// reference renders the example config as Markdown: a table per section
// with every key, its default and the comment above it in the example.
func reference(example []byte) []byte {
	var b bytes.Buffer
	b.WriteString("<!-- Generated from config/mediaslot.example.toml by `go generate ./config`; do not edit. -->\n")
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("`mediaslot serve --config FILE` reads a TOML file. Every key is optional: a key left out keeps\n")
	b.WriteString("the default shown here, and an unknown key is refused at start-up. Relative paths are resolved\n")
	b.WriteString("against the directory of the config file. `mediaslot serve --check-config` validates a file and\n")
	b.WriteString("probes what it names (see [OPERATIONS.md](OPERATIONS.md)). The same keys and defaults, as a file\n")
	b.WriteString("to copy, are in [config/mediaslot.example.toml](../config/mediaslot.example.toml).\n\n")
	b.WriteString("Secrets may come from the environment instead of the file: `" + EnvComponentSecret + "`,\n")
	b.WriteString("`" + EnvTokenKey + "`, `" + EnvS3Secret + "` and `" + EnvDataPassword + "` override the keys they name.\n")

	var doc []string
	var group *keyGroup
	section := ""
	flush := func() {
		if group == nil {
			return
		}
		names := make([]string, len(group.keys))
		defs := make([]string, len(group.defaults))
		for i, k := range group.keys {
			names[i] = "`" + k + "`"
			defs[i] = "`" + strings.ReplaceAll(group.defaults[i], "|", `\|`) + "`"
		}
		text := strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(strings.Join(group.doc, " "))
		fmt.Fprintf(&b, "| %s | %s | %s |\n", strings.Join(names, "<br>"), strings.Join(defs, "<br>"), text)
		group = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(example))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			flush()
			doc = nil
		case strings.HasPrefix(line, "#"):
			flush()
			doc = append(doc, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		case strings.HasPrefix(line, "["):
			flush()
			section = strings.Trim(line, "[]")
			fmt.Fprintf(&b, "\n## [%s]\n\n| key | default | meaning |\n|---|---|---|\n", section)
			doc = nil
		case section != "":
			key, def, _ := strings.Cut(line, "=")
			key, def = section+"."+strings.TrimSpace(key), strings.TrimSpace(def)
			if group != nil && doc == nil {
				group.keys, group.defaults = append(group.keys, key), append(group.defaults, def)
				continue
			}
			flush()
			group = &keyGroup{keys: []string{key}, defaults: []string{def}, doc: doc}
			doc = nil
		}
	}
	flush()
	return b.Bytes()
}
