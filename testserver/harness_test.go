package testserver

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Test code stays out of mediaslot: a package of the module that imports
// testing (this harness, the test stores, dbfiletest) is test-only, and no
// other package imports one outside its tests; no command links testing,
// whose flags would show in mediaslot's own.
func TestHarnessOnlyInTests(t *testing.T) {
	imports := map[string][]string{} // the non-test imports of each package
	for _, line := range goList(t, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	testOnly := func(pkg string) bool { return slices.Contains(imports[pkg], "testing") }
	if !testOnly("mediaslot/testserver") {
		t.Fatal("the harness does not import testing: the check below would miss it")
	}
	for pkg, imps := range imports {
		for _, imp := range imps {
			if testOnly(imp) && !testOnly(pkg) {
				t.Errorf("%s imports the test-only %s outside its tests", pkg, imp)
			}
		}
	}
	for _, dep := range goList(t, "-deps", "-f", "{{.ImportPath}}", "./cmd/...") {
		if dep == "testing" || testOnly(dep) {
			t.Errorf("a command links %s", dep)
		}
	}
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"list"}, args...)...) // go test puts its own go first in PATH
	cmd.Dir = ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
