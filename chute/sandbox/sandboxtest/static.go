package sandboxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"paradrop/chute/sandbox"
)

var static struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// StaticExecutable returns a statically linked build of the running test
// binary, for chutes with a health command (see
// sandbox.CheckExecutable): the binary itself when it is static (tests
// run with CGO_ENABLED=0), else a copy built once with CGO_ENABLED=0 from
// the package in the working directory, as `go test` runs tests. The
// copy plays the same roles; RemoveStatic removes it.
func StaticExecutable(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if sandbox.CheckExecutable(self) == nil {
		return self
	}
	static.once.Do(func() {
		static.dir, static.err = os.MkdirTemp("", "paradrop-static-")
		if static.err != nil {
			return
		}
		path := filepath.Join(static.dir, filepath.Base(self))
		cmd := exec.Command(goTool(), "test", "-c", "-o", path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			static.err = fmt.Errorf("build a static test binary: %v: %s", err, out)
			return
		}
		// The chute's init runs it as the chute's host uid.
		if err := os.Chmod(static.dir, 0o755); err != nil {
			static.err = err
			return
		}
		static.path = path
	})
	if static.err != nil {
		t.Fatal(static.err)
	}
	return static.path
}

// RemoveStatic removes the binary StaticExecutable built, if any; TestMain
// calls it after the tests.
func RemoveStatic() {
	if static.dir != "" {
		os.RemoveAll(static.dir)
	}
}

func goTool() string {
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
