package examples

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// envSenseLibs are the shared libraries python3 and its standard library
// load (sqlite3 among them), by their Debian package names.
var envSenseLibs = []string{
	"media-types", "libc6", "libgcc-s1", "libcrypt1", "zlib1g", "libexpat1", "libffi8",
	"libbz2-1.0", "liblzma5", "libuuid1", "libsqlite3-0",
}

// pythonVersion finds the release's python3 (3.11 on Debian 12) in what
// libpython3-stdlib depends on.
var pythonVersion = regexp.MustCompile(`\blibpython(3\.[0-9]+)-stdlib\b`)

// EnvSenseDebs are the Debian packages of EnvSense's image: python3 with
// its standard library, the release's python3.X behind them, and the
// shared libraries they load; nothing else. apt's lists tell which
// python3.X the release has.
func EnvSenseDebs(ctx context.Context) ([]string, error) {
	cmd := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", "libpython3-stdlib")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: apt-cache show libpython3-stdlib: %v: %s", ErrNoPackages, err, strings.TrimSpace(stderr.String()))
	}
	m := pythonVersion.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%w: libpython3-stdlib depends on no libpython3.X-stdlib:\n%s", ErrNoPackages, out)
	}
	v := string(m[1])
	return append([]string{"python3-minimal", "python" + v + "-minimal", "libpython" + v + "-minimal",
		"libpython3-stdlib", "libpython" + v + "-stdlib"}, envSenseLibs...), nil
}

// EnvSenseDebList is the file of EnvSense's image naming the Debian
// packages' files it was unpacked from, one a line.
const EnvSenseDebList = "usr/share/paradrop/debs"

// envSenseSkip are the unpacked packages' subtrees the image leaves out:
// documentation, and the tools that manage Python packages on a Debian
// system (the chute installs none).
var envSenseSkip = []string{"usr/share/doc", "usr/share/man", "usr/share/lintian", "usr/share/python3/debian_defaults"}

// EnvSense builds the EnvSense chute package: Debian's python3 (see
// DebianRoot; cache keeps the unpacked packages and the package itself,
// keyed on their versions and on the chute's files) running envsense.py.
func EnvSense(ctx context.Context, cache string) ([]byte, error) {
	pkgs, err := EnvSenseDebs(ctx)
	if err != nil {
		return nil, fmt.Errorf("envsense image: %w", err)
	}
	root, debs, err := DebianRoot(ctx, cache, pkgs)
	if err != nil {
		return nil, fmt.Errorf("envsense image: %w", err)
	}
	files := map[string][]byte{}
	h := sha256.New()
	h.Write([]byte(root))
	for _, name := range []string{"chute.yaml", "envsense.py", "index.html"} {
		b, err := samples.ReadFile("envsense/" + name)
		if err != nil {
			return nil, err
		}
		files[name] = b
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	cached := filepath.Join(cache, "envsense-"+hex.EncodeToString(h.Sum(nil)[:8])+".tar.gz")
	if b, err := os.ReadFile(cached); err == nil {
		return b, nil
	}
	t := newTarball()
	if err := t.file("chute.yaml", 0o644, files["chute.yaml"]); err != nil {
		return nil, err
	}
	if err := t.tree(root, "rootfs", envSenseSkip); err != nil {
		return nil, fmt.Errorf("envsense image: %w", err)
	}
	for _, name := range []string{"envsense.py", "index.html"} {
		if err := t.file("rootfs/app/"+name, 0o644, files[name]); err != nil {
			return nil, err
		}
	}
	// What the image is made of, since dpkg-deb -x records nothing.
	if err := t.file("rootfs/"+EnvSenseDebList, 0o644, []byte(strings.Join(debs, "\n")+"\n")); err != nil {
		return nil, err
	}
	pkg, err := t.bytes()
	if err != nil {
		return nil, err
	}
	// Kept for next time if it can be; concurrent builds each write their
	// own file and the last rename wins.
	if f, err := os.CreateTemp(cache, "envsense-*.tmp"); err == nil {
		_, werr := f.Write(pkg)
		if cerr := f.Close(); werr == nil && cerr == nil {
			os.Rename(f.Name(), cached)
		}
		os.Remove(f.Name())
	}
	return pkg, nil
}

// CacheDir is where the examples keep what they download and build:
// $PARADROP_CACHE, else the user's cache directory, else (no $HOME, as in
// some CI jobs) the temporary directory.
func CacheDir() string {
	if d := os.Getenv("PARADROP_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "paradrop")
	}
	return filepath.Join(os.TempDir(), "paradrop-cache")
}
