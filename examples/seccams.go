package examples

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
)

// SecCamsPackage is the Go package of the SecCams chute's program.
const SecCamsPackage = "paradrop/examples/seccams"

// SecCams builds the SecCams chute package: its program, built static
// for the machine's architecture by the Go toolchain from paradrop's
// source (the working directory must be in its checkout, as it is for
// `make examples`, `make demo` and the tests), at /bin/seccams in a busybox
// image.
func SecCams(ctx context.Context) ([]byte, error) {
	return goChute(ctx, "seccams/chute.yaml", SecCamsPackage)
}

// goChute builds the chute package whose manifest is the embedded file
// manifest around the static Go program pkg, at /bin/NAME (the package's
// last element) in a busybox image.
func goChute(ctx context.Context, manifest, pkg string) ([]byte, error) {
	man, err := samples.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	bin, err := BuildGo(ctx, pkg)
	if err != nil {
		return nil, err
	}
	return Package(string(man), map[string]string{"bin/" + path.Base(pkg): string(bin)})
}

// BuildGo builds the Go program pkg static for the machine's architecture
// (the working directory must be in paradrop's checkout) and returns it.
func BuildGo(ctx context.Context, pkg string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "chute-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, path.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build the %s chute's program (needs Go and paradrop's source): %v: %s", path.Base(pkg), err, strings.TrimSpace(stderr.String()))
	}
	return os.ReadFile(bin)
}
