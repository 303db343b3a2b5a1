package integration

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mediaslot/testserver"
)

// docs/SECURITY.md names, for every promise, the test that proves it as
// `package.TestName`, where package is a package name (main for
// cmd/mediaslot) or a directory under the module root (`xmpp/relay`), and
// a subtest as `package.TestName/sub`: each name must be a test or fuzz
// target of that package, and each subtest a name the test (or a suite it
// calls, such as offline/queuetest) gives t.Run, so the page cannot keep a
// promise whose test was renamed, moved or removed.
func TestSecurityDocNamesRealTests(t *testing.T) {
	root := testserver.ModuleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	src := parseModule(t, root)
	names := regexp.MustCompile("`((?:[a-z0-9]+/)*[a-z0-9]+)\\.((?:Test|Fuzz)[A-Za-z0-9_]*)((?:/[^`/]+)*)`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 50 {
		t.Fatalf("docs/SECURITY.md names %d tests; the table of promises is missing?", len(names))
	}
	for _, m := range names {
		pkg, test, subs := m[1], m[2], strings.Split(strings.TrimPrefix(m[3], "/"), "/")
		var fn *moduleFunc
		for _, dir := range src.dirs(pkg) {
			if f := src.funcs[dir+"."+test]; f != nil && f.test {
				fn = f
			}
		}
		if fn == nil {
			t.Errorf("docs/SECURITY.md names %s.%s, which is no test of package %s", pkg, test, pkg)
			continue
		}
		if m[3] == "" {
			continue
		}
		run := src.subtestNames(fn)
		for _, sub := range subs {
			if !run[sub] {
				t.Errorf("docs/SECURITY.md names %s, but %s.%s runs no subtest %q", m[0], pkg, test, sub)
			}
		}
	}
}

// moduleSource is every function declared in the module, for resolving
// the test names of docs/SECURITY.md and the subtests their tests run.
type moduleSource struct {
	funcs map[string]*moduleFunc // by "dir.Name", dir relative to the module root
	byPkg map[string][]string    // package name (without _test) -> dirs
}

type moduleFunc struct {
	dir     string
	decl    *ast.FuncDecl
	imports map[string]string // local name -> dir, for the module's packages
	test    bool              // declared in a _test.go file
}

func parseModule(t *testing.T, root string) *moduleSource {
	src := &moduleSource{funcs: map[string]*moduleFunc{}, byPkg: map[string][]string{}}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(rel)
		pkg := strings.TrimSuffix(f.Name.Name, "_test")
		if !slices.Contains(src.byPkg[pkg], dir) {
			src.byPkg[pkg] = append(src.byPkg[pkg], dir)
		}
		imports := map[string]string{}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			local, ok := strings.CutPrefix(p, "mediaslot/")
			if !ok {
				continue
			}
			name := local[strings.LastIndex(local, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			imports[name] = local
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Recv == nil {
				src.funcs[dir+"."+fd.Name.Name] = &moduleFunc{dir: dir, decl: fd, imports: imports, test: strings.HasSuffix(path, "_test.go")}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// dirs resolves a package as SECURITY.md names it: a directory if it has
// a slash, else a package name.
func (s *moduleSource) dirs(pkg string) []string {
	if strings.Contains(pkg, "/") {
		return []string{pkg}
	}
	return s.byPkg[pkg]
}

// subtestNames is the names, as go test shows them (spaces as
// underscores), that fn and the module's functions it calls, transitively,
// give t.Run: a string literal argument, or, where the argument is not a
// literal (a table-driven test's c.name), the string literals of the
// function's composite literals (the table).
func (s *moduleSource) subtestNames(fn *moduleFunc) map[string]bool {
	names := map[string]bool{}
	seen := map[*moduleFunc]bool{}
	var visit func(f *moduleFunc)
	visit = func(f *moduleFunc) {
		if f == nil || seen[f] || f.decl.Body == nil {
			return
		}
		seen[f] = true
		table := false
		ast.Inspect(f.decl.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fun := call.Fun.(type) {
			case *ast.Ident:
				visit(s.funcs[f.dir+"."+fun.Name])
			case *ast.SelectorExpr:
				if x, ok := fun.X.(*ast.Ident); ok {
					if dir, ok := f.imports[x.Name]; ok {
						visit(s.funcs[dir+"."+fun.Sel.Name])
					}
				}
				if fun.Sel.Name == "Run" && len(call.Args) == 2 {
					if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						addSubtestName(names, lit)
					} else {
						table = true
					}
				}
			}
			return true
		})
		if table {
			ast.Inspect(f.decl.Body, func(n ast.Node) bool {
				if cl, ok := n.(*ast.CompositeLit); ok {
					for _, e := range cl.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok {
							e = kv.Value
						}
						if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							addSubtestName(names, lit)
						}
					}
				}
				return true
			})
		}
	}
	visit(fn)
	return names
}

func addSubtestName(names map[string]bool, lit *ast.BasicLit) {
	if s, err := strconv.Unquote(lit.Value); err == nil {
		names[strings.ReplaceAll(s, " ", "_")] = true
	}
}
