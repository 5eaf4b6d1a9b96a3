// Command openwrt packages paradrop for OpenWrt: for one binary of `make
// cross`, an .ipk for opkg (OpenWrt up to 23.05) and, when apk-tools 3 is
// at hand, an .apk (24.10 and later), holding the binary, the procd init
// script, the UCI configuration /etc/config/paradrop (a conffile) and the
// hotplug script of files/. `make package` runs it for every arch.
package main

import (
	"embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

//go:embed files
var files embed.FS

// meta is the package's control data, shared by both formats.
type meta struct {
	Name, Version, Arch      string
	Depends                  []string
	Maintainer, License, URL string
	Section, Description     string
	Conffiles                []string
	Epoch                    time.Time // every file's mtime, for reproducible packages
}

// depends are the OpenWrt packages the daemon runs: Open vSwitch (its
// ovsdb-server and ovs-vswitchd, with the kernel datapath), veth pairs for
// the chutes' links, loop devices and ext4 for their volumes, mke2fs/e2fsck
// and resize2fs to make and grow them, nftables NAT for the WAN masquerade.
var depends = []string{"openvswitch", "kmod-veth", "kmod-loop", "kmod-fs-ext4", "e2fsprogs", "resize2fs", "kmod-nft-nat"}

// entry is a file of the package's data.
type entry struct {
	path string // absolute, on the router
	mode os.FileMode
	data []byte
}

// layout is where each file goes on the router.
func layout(bin []byte) ([]entry, error) {
	e := []entry{{"/usr/bin/paradrop", 0o755, bin}}
	for _, f := range []struct {
		src, dst string
		mode     os.FileMode
	}{
		{"files/paradrop.init", "/etc/init.d/paradrop", 0o755},
		{"files/paradrop.config", "/etc/config/paradrop", 0o644},
		{"files/paradrop.hotplug", "/etc/hotplug.d/net/50-paradrop", 0o644},
	} {
		b, err := files.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		e = append(e, entry{f.dst, f.mode, b})
	}
	return e, nil
}

// versionRE is a version both opkg and apk order correctly: OpenWrt's
// VERSION-rRELEASE, with an optional ~commit as its git snapshots have.
var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*(~[0-9a-f]{4,40})?-r[0-9]+$`)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "openwrt:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("openwrt", flag.ContinueOnError)
	bin := fs.String("bin", "", "paradrop binary of `make cross` (dist/paradrop-linux-GOARCH)")
	goarch := fs.String("target", "", "which: 386, armv7, arm64, mipsle or mips")
	arch := fs.String("arch", "", "OpenWrt architecture to label the package with (default: the target's usual one)")
	out := fs.String("out", "dist/openwrt", "directory of the packages")
	m := meta{Name: "paradrop", Section: "net", Depends: depends, Conffiles: []string{"/etc/config/paradrop"},
		Description: "ParaDrop gateway: runs third-party services (chutes) isolated in namespaces and cgroups, networked through Open vSwitch under the operator's control."}
	fs.StringVar(&m.Version, "version", "", "package version, as OpenWrt's: 1.2.3-r1 or 0.123~abcdef12-r1")
	fs.StringVar(&m.Maintainer, "maintainer", "", "Maintainer field")
	fs.StringVar(&m.License, "license", "", "License field (SPDX)")
	fs.StringVar(&m.URL, "url", "", "URL field")
	apk := fs.String("apk", "", "apk-tools 3 binary that makes the .apk (apk mkpkg); none: no .apk")
	zopfliPath := fs.String("zopfli", "", "zopfli binary that gzips the .ipk's data (4-5% smaller, 40 s per arch); none: Go's gzip -9")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, ok := targets[*goarch]
	if !ok {
		return fmt.Errorf("-target %q: want one of 386, armv7, arm64, mipsle, mips", *goarch)
	}
	if *arch != "" {
		t.Arch = *arch
	}
	m.Arch = t.Arch
	if !versionRE.MatchString(m.Version) {
		return fmt.Errorf("-version %q: want VERSION-rRELEASE such as 1.2.3-r1 or 0.123~abcdef12-r1", m.Version)
	}
	if m.Maintainer == "" || m.License == "" {
		return fmt.Errorf("-maintainer and -license are required")
	}
	m.Epoch = time.Unix(0, 0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		m.Epoch = time.Unix(n, 0)
	}
	if err := t.checkELF(*bin); err != nil {
		return err
	}
	b, err := os.ReadFile(*bin)
	if err != nil {
		return err
	}
	entries, err := layout(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	ipk := filepath.Join(*out, fmt.Sprintf("%s_%s_%s.ipk", m.Name, m.Version, m.Arch))
	var dataGz gzipper
	if *zopfliPath != "" {
		dataGz = zopfli(*zopfliPath)
	}
	if err := writeIPK(ipk, m, entries, dataGz); err != nil {
		return fmt.Errorf("%s: %w", ipk, err)
	}
	report(ipk)
	if *apk == "" {
		return nil
	}
	// apk names packages NAME-VERSION.apk, without the arch; the arch
	// goes in the directory so that every target's can sit side by side.
	dir := filepath.Join(*out, m.Arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	a := filepath.Join(dir, fmt.Sprintf("%s-%s.apk", m.Name, m.Version))
	if err := writeAPK(*apk, a, m, entries); err != nil {
		return fmt.Errorf("%s: %w", a, err)
	}
	report(a)
	return nil
}

func report(path string) {
	if fi, err := os.Stat(path); err == nil {
		fmt.Printf("%-60s %.2f MiB\n", path, float64(fi.Size())/(1<<20))
	}
}

// postinst and prerm are what OpenWrt's build writes for every package:
// /lib/functions.sh's defaults enable and start the init script after an
// install, stop and disable it before a removal, and skip both in an image
// being built (IPKG_INSTROOT).
const postinst = `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
`

const prerm = `#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
`

// control is the opkg control file.
func (m meta) control(installedSize int64) string {
	var b strings.Builder
	for _, f := range [][2]string{
		{"Package", m.Name}, {"Version", m.Version}, {"Depends", strings.Join(m.Depends, ", ")},
		{"License", m.License}, {"Section", m.Section}, {"URL", m.URL}, {"Maintainer", m.Maintainer},
		{"Architecture", m.Arch}, {"Installed-Size", strconv.FormatInt(installedSize, 10)},
		{"Description", m.Description},
	} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	return b.String()
}
