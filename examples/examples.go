// Package examples owns the sample chutes: packages built from the host's
// static busybox, used by the demo gateway, the tests and the benchmarks.
package examples

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"
)

// Busybox is where Debian's busybox-static installs its binary.
const Busybox = "/bin/busybox"

//go:embed hello
var samples embed.FS

// Package builds a chute package (tar.gz): chute.yaml, a rootfs holding a
// static busybox with its applet links, and files (path in the rootfs ->
// content, mode 0644; a path ending in .sh gets 0755).
func Package(manifest string, files map[string]string) ([]byte, error) {
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, fmt.Errorf("sample chute needs busybox-static: %w", err)
	}
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	now := time.Now()
	dirs := map[string]bool{}
	add := func(h *tar.Header, body []byte) error {
		h.ModTime = now
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := add(&tar.Header{Name: parents[i] + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(&tar.Header{Name: "chute.yaml", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(manifest))}, []byte(manifest)); err != nil {
		return nil, err
	}
	for _, d := range []string{"rootfs/etc", "rootfs/root", "rootfs/www"} {
		if err := mkdirs(d + "/x"); err != nil {
			return nil, err
		}
	}
	if err := mkdirs("rootfs/bin/busybox"); err != nil {
		return nil, err
	}
	if err := add(&tar.Header{Name: "rootfs/bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(out)) {
		p := "rootfs/" + applet
		if p == "rootfs/bin/busybox" {
			continue
		}
		if err := mkdirs(p); err != nil {
			return nil, err
		}
		if err := add(&tar.Header{Name: p, Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox", Mode: 0o777}, nil); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := "rootfs/" + strings.TrimPrefix(n, "/")
		mode := int64(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		if err := mkdirs(p); err != nil {
			return nil, err
		}
		if err := add(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(files[n]))}, []byte(files[n])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Hello builds the demo chute: busybox httpd serving a page on port 80.
func Hello() ([]byte, error) {
	man, err := samples.ReadFile("hello/chute.yaml")
	if err != nil {
		return nil, err
	}
	page, err := samples.ReadFile("hello/index.html")
	if err != nil {
		return nil, err
	}
	return Package(string(man), map[string]string{"www/index.html": string(page)})
}
