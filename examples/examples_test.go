package examples

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/chute/manifest"
)

// entries reads a package into name -> header, and body for regular files.
func entries(t *testing.T, pkg []byte) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(pkg))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	hdrs, bodies := map[string]*tar.Header{}, map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdrs[h.Name] != nil {
			t.Errorf("%s twice in the package", h.Name)
		}
		hdrs[h.Name] = h
		if h.Typeflag == tar.TypeReg {
			if bodies[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestHello(t *testing.T) {
	if _, err := os.Stat(Busybox); err != nil {
		t.Skip("needs busybox-static")
	}
	pkg, err := Hello()
	if err != nil {
		t.Fatal(err)
	}
	hdrs, bodies := entries(t, pkg)
	if _, err := manifest.Parse(bodies["chute.yaml"]); err != nil {
		t.Errorf("chute.yaml: %v", err)
	}
	if h := hdrs["rootfs/bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
		t.Errorf("rootfs/bin/sh: %+v", h)
	}
	if h := hdrs["rootfs/usr/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("no rootfs/usr/ before its applets: %+v", h)
	}
	if !bytes.Contains(bodies["rootfs/www/index.html"], []byte("Hello from a chute")) {
		t.Error("no page in rootfs/www")
	}
}

// envSense builds the package, or skips where apt cannot give Debian's
// packages.
func envSense(t *testing.T) []byte {
	t.Helper()
	cache := CacheDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg, err := EnvSense(ctx, cache)
	if errors.Is(err, ErrNoPackages) {
		t.Skipf("apt cannot give Debian's python3: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pkg
}

// The package is an ordinary chute package whose rootfs is Debian's
// python3 and the service's code, and nothing of the packages' docs.
func TestEnvSensePackage(t *testing.T) {
	hdrs, bodies := entries(t, envSense(t))
	m, err := manifest.Parse(bodies["chute.yaml"])
	if err != nil {
		t.Fatalf("chute.yaml: %v", err)
	}
	if m.Command[0] != "/usr/bin/python3" || m.Net.WAN {
		t.Errorf("manifest: command %v, wan %v; want python3 and no WAN", m.Command, m.Net.WAN)
	}
	if h := hdrs["rootfs/usr/bin/python3"]; h == nil || h.Typeflag != tar.TypeSymlink || !strings.HasPrefix(h.Linkname, "python3.") {
		t.Errorf("rootfs/usr/bin/python3: %+v", h)
	}
	pkgs, err := EnvSenseDebs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	python := strings.TrimSuffix(pkgs[1], "-minimal") // python3.X
	for _, want := range []string{"rootfs/app/envsense.py", "rootfs/app/index.html", "rootfs/usr/lib/" + python + "/sqlite3/__init__.py", "rootfs/" + EnvSenseDebList} {
		if hdrs[want] == nil {
			t.Errorf("no %s", want)
		}
	}
	debs := string(bodies["rootfs/"+EnvSenseDebList])
	for _, p := range pkgs {
		if !strings.Contains(debs, "\n"+p+"_") && !strings.HasPrefix(debs, p+"_") {
			t.Errorf("%s is not in the image's package list:\n%s", p, debs)
		}
	}
	for name := range hdrs {
		if strings.HasPrefix(name, "rootfs/usr/share/doc/") || strings.HasPrefix(name, "rootfs/usr/share/man/") {
			t.Errorf("%s is in the image", name)
			break
		}
	}
}

// envsense.py's unit tests pass on the image's own python3: its code runs
// unmodified on what the chute runs.
func TestEnvSensePython(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	hdrs, bodies := entries(t, envSense(t))
	root := t.TempDir()
	for name, h := range hdrs {
		rel, ok := strings.CutPrefix(name, "rootfs/")
		if !ok || rel == "" {
			continue
		}
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err := os.MkdirAll(p, 0o755)
			if err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.WriteFile(p, bodies[name], os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
	test, err := samples.ReadFile("envsense/test_envsense.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app", "test_envsense.py"), test, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-B", "-m", "unittest", "-v", "test_envsense")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/app"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=/tmp"}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nOK")) {
		t.Fatalf("python3 -m unittest in the image: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
