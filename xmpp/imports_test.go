package xmpp

import (
	"os/exec"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// TestImportRules checks the import rules of docs/ARCHITECTURE.md: the
// protocols reach the link only through its Handler interface, share
// stanza helpers only through xmpp/wire, and nothing below them knows XMPP.
func TestImportRules(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), "go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = testserver.ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const m = "mediaslot/"
	// allowed reports whether package pkg of the module may import imp of the module.
	allowed := func(pkg, imp string) bool {
		switch {
		case pkg == m+"refusal":
			return false
		case pkg == m+"store" || strings.HasPrefix(pkg, m+"store/"):
			return imp == m+"store" || imp == m+"internal/fsync"
		case pkg == m+"upload" || pkg == m+"offline":
			return imp != m+"xmpp" && !strings.HasPrefix(imp, m+"xmpp/")
		case pkg == m+"xmpp/wire":
			return imp != m+"xmpp" && !strings.HasPrefix(imp, m+"xmpp/")
		case pkg == m+"xmpp/httpupload" || pkg == m+"xmpp/relay":
			return imp == m+"xmpp/wire" || imp != m+"xmpp" && !strings.HasPrefix(imp, m+"xmpp/")
		}
		return true
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, m) && !allowed(f[0], imp) {
				t.Errorf("%s imports %s", f[0], imp)
			}
		}
		if strings.HasPrefix(f[0], m+"xmpp/") {
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("go list named %d packages under xmpp/: the check saw too little", checked)
	}
}
