package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// writeAPK makes an apk-tools 3 package (the ADB format of OpenWrt 24.10
// and later) with apk-tools' own `apk mkpkg`, given as apk, staged as
// OpenWrt's include/package-pack.mk stages it: the files, and under
// /lib/apk/packages the list of the package's files and its conffiles
// with their checksums, which OpenWrt's sysupgrade and opkg-compat
// tooling read. The files must belong to root: run as root or under
// fakeroot.
func writeAPK(apk, file string, m meta, entries []entry) error {
	stage, err := os.MkdirTemp("", "paradrop-apk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, "root")
	var list []string
	for _, e := range entries {
		list = append(list, e.path)
	}
	sort.Strings(list)
	var static strings.Builder
	for _, c := range m.Conffiles {
		for _, e := range entries {
			if e.path == c {
				sum := sha256.Sum256(e.data)
				fmt.Fprintf(&static, "%s %s\n", c, hex.EncodeToString(sum[:]))
			}
		}
	}
	pkgs := "/lib/apk/packages/" + m.Name
	entries = append(entries[:len(entries):len(entries)],
		entry{pkgs + ".list", 0o644, []byte(strings.Join(list, "\n") + "\n")},
		entry{pkgs + ".conffiles", 0o644, []byte(strings.Join(m.Conffiles, "\n") + "\n")},
		entry{pkgs + ".conffiles_static", 0o644, []byte(static.String())},
	)
	for _, e := range entries {
		p := filepath.Join(root, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, e.data, e.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, e.mode); err != nil { // past the umask
			return err
		}
	}
	// Directories and files alike carry the fixed mtime.
	if err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, m.Epoch, m.Epoch)
	}); err != nil {
		return err
	}
	scripts := map[string]string{
		"post-install":  apkPostInstall(m.Name, false),
		"post-upgrade":  apkPostInstall(m.Name, true),
		"pre-deinstall": apkPreDeinstall(m.Name),
	}
	args := []string{"mkpkg",
		"--info", "name:" + m.Name, "--info", "version:" + m.Version,
		"--info", "description:" + m.Description, "--info", "arch:" + m.Arch,
		"--info", "license:" + m.License, "--info", "maintainer:" + m.Maintainer,
		"--info", "depends:" + strings.Join(m.Depends, " "),
	}
	if m.URL != "" {
		args = append(args, "--info", "url:"+m.URL)
	}
	for _, name := range []string{"post-install", "post-upgrade", "pre-deinstall"} {
		p := filepath.Join(stage, name)
		if err := os.WriteFile(p, []byte(scripts[name]), 0o755); err != nil {
			return err
		}
		args = append(args, "--script", name+":"+p)
	}
	tmp := file + ".tmp"
	args = append(args, "--files", root, "--output", tmp)
	cmd := exec.Command(apk, args...)
	if os.Geteuid() != 0 {
		cmd = exec.Command("fakeroot", append([]string{"--", apk}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("apk mkpkg: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return os.Rename(tmp, file)
}

// apkPostInstall is package-pack.mk's post-install (and, with
// PKG_UPGRADE=1, post-upgrade) script.
func apkPostInstall(name string, upgrade bool) string {
	s := "#!/bin/sh\n"
	if upgrade {
		s += "export PKG_UPGRADE=1\n"
	}
	return s + `[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="` + name + `"
add_group_and_user
default_postinst
`
}

// apkPreDeinstall is package-pack.mk's pre-deinstall script.
func apkPreDeinstall(name string) string {
	return `#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="` + name + `"
default_prerm
`
}
