package examples

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoPackages is returned (wrapped) when apt cannot name or download the
// Debian packages of an image: no apt, no package lists, no mirror.
var ErrNoPackages = errors.New("Debian packages unavailable")

// DebianRoot returns a directory holding exactly pkgs, Debian packages of
// the host's architecture, unpacked as dpkg-deb -x does: no dependency is
// added and no maintainer script runs, so the list names every package
// the image needs. apt-get downloads them from the configured mirror; the
// unpacked tree is kept under cache, keyed on the packages' versions, and
// reused until one of them changes. It also returns the packages' file
// names, which tell their versions.
func DebianRoot(ctx context.Context, cache string, pkgs []string) (root string, files []string, err error) {
	files, err = debFiles(ctx, pkgs)
	if err != nil {
		return "", nil, err
	}
	root, err = debianRoot(ctx, cache, pkgs, files)
	return root, files, err
}

func debianRoot(ctx context.Context, cache string, pkgs, files []string) (string, error) {
	sum := sha256.Sum256([]byte(strings.Join(files, "\n")))
	root := filepath.Join(cache, "debroot-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
		return filepath.Join(root, "rootfs"), nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cache, "debroot-tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	debs := filepath.Join(tmp, "debs")
	if err := os.Mkdir(debs, 0o755); err != nil {
		return "", err
	}
	args := []string{"-q", "download"}
	if os.Geteuid() == 0 {
		// apt's _apt user cannot write to a directory of root's 0700 cache.
		args = append([]string{"-o", "APT::Sandbox::User=root"}, args...)
	}
	get := exec.CommandContext(ctx, "apt-get", append(args, pkgs...)...)
	get.Dir = debs
	if out, err := get.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: apt-get download: %v\n%s", ErrNoPackages, err, out)
	}
	got, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil {
		return "", err
	}
	if len(got) != len(pkgs) {
		return "", fmt.Errorf("%w: apt-get downloaded %d files for %d packages", ErrNoPackages, len(got), len(pkgs))
	}
	for _, deb := range got {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, filepath.Join(tmp, "rootfs")).CombinedOutput(); err != nil {
			return "", fmt.Errorf("unpack %s: %v\n%s", filepath.Base(deb), err, out)
		}
	}
	if err := os.RemoveAll(debs); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(strings.Join(files, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	// A concurrent build of the same key may have won: its tree is as good.
	if err := os.Rename(tmp, root); err != nil {
		if _, statErr := os.Stat(filepath.Join(root, ".complete")); statErr != nil {
			return "", err
		}
	}
	return filepath.Join(root, "rootfs"), nil
}

// debFiles names the files apt would download for pkgs (name, version and
// architecture), sorted, without downloading them.
func debFiles(ctx context.Context, pkgs []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-q", "download", "--print-uris"}, pkgs...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: apt-get download --print-uris: %v: %s", ErrNoPackages, err, strings.TrimSpace(stderr.String()))
	}
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && strings.HasSuffix(f[1], ".deb") {
			files = append(files, f[1])
		}
	}
	if len(files) != len(pkgs) {
		return nil, fmt.Errorf("%w: apt names %d files for %d packages:\n%s", ErrNoPackages, len(files), len(pkgs), out)
	}
	sort.Strings(files)
	return files, nil
}
