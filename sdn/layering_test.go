package sdn

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// The network is below the chute manager: it takes its own typed policy,
// and nothing it imports, directly or not, is the manager's.
func TestImportsNothingAbove(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var walk func(path string, from []string)
	walk = func(path string, from []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, above := range []string{"paradrop/chute", "paradrop/api", "paradrop/usage", "paradrop/tenant"} {
			if path == above || strings.HasPrefix(path, above+"/") {
				t.Errorf("sdn imports %s (via %s)", path, strings.Join(from, " -> "))
			}
		}
		pkg, err := build.Default.ImportDir(filepath.Join(root, strings.TrimPrefix(path, "paradrop")), 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if imp == "paradrop" || strings.HasPrefix(imp, "paradrop/") {
				walk(imp, append(from, imp))
			}
		}
	}
	walk("paradrop/sdn", []string{"paradrop/sdn"})
	if len(seen) < 3 {
		t.Fatalf("walked only %v", seen)
	}
}
