// Package examples owns the sample chutes, used by the demo gateway, the
// tests and the benchmarks: packages built from the host's static busybox,
// EnvSense, whose image is Debian's python3 running a Python service, and
// SecCams and the HD stream, static Go binaries in a busybox image.
package examples

import (
	"embed"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// Busybox is where Debian's busybox-static installs its binary.
const Busybox = "/bin/busybox"

//go:embed hello envsense seccams/chute.yaml hdstream/chute.yaml
var samples embed.FS

// Package builds a chute package (tar.gz): chute.yaml, a rootfs holding a
// static busybox with its applet links, and files (path in the rootfs ->
// content, mode 0644; a path ending in .sh or in bin/ gets 0755).
func Package(manifest string, files map[string]string) ([]byte, error) {
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, fmt.Errorf("sample chute needs busybox-static: %w", err)
	}
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	t := newTarball()
	if err := t.file("chute.yaml", 0o644, []byte(manifest)); err != nil {
		return nil, err
	}
	for _, d := range []string{"rootfs/etc", "rootfs/root", "rootfs/www"} {
		if err := t.mkdirs(d + "/x"); err != nil {
			return nil, err
		}
	}
	if err := t.file("rootfs/bin/busybox", 0o755, bb); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		if err := t.symlink("rootfs/"+strings.TrimPrefix(applet, "/"), "/bin/busybox"); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if strings.HasSuffix(n, ".sh") || strings.HasPrefix(strings.TrimPrefix(n, "/"), "bin/") {
			mode = 0o755
		}
		if err := t.file("rootfs/"+strings.TrimPrefix(n, "/"), mode, []byte(files[n])); err != nil {
			return nil, err
		}
	}
	return t.bytes()
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
