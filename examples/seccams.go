package examples

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
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
	man, err := samples.ReadFile("seccams/chute.yaml")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "seccams-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "seccams")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, SecCamsPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build the seccams chute's program (needs Go and paradrop's source): %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return Package(string(man), map[string]string{"bin/seccams": string(b)})
}
