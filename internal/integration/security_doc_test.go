package integration

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// docs/SECURITY.md names, for every promise, the test that proves it as
// `package.TestName`: each name must be a test or fuzz target of that
// package, so the page cannot keep a promise whose test was renamed or
// removed.
func TestSecurityDocNamesRealTests(t *testing.T) {
	root := testserver.ModuleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	// test functions by package name (main for cmd/mediaslot)
	tests := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := strings.TrimSuffix(f.Name.Name, "_test")
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Recv == nil {
				tests[pkg+"."+fd.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`([a-z0-9]+)\\.((?:Test|Fuzz)[A-Za-z0-9_]*)(?:/[^`]*)?`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 50 {
		t.Fatalf("docs/SECURITY.md names %d tests; the table of promises is missing?", len(names))
	}
	for _, m := range names {
		if !tests[m[1]+"."+m[2]] {
			t.Errorf("docs/SECURITY.md names %s.%s, which is no test of package %s", m[1], m[2], m[1])
		}
	}
}
