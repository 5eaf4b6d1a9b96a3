package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// apkTool is apk-tools 3: $PARADROP_APK, else apk on the PATH if it is
// version 3 (Debian has none; build it with `make LUA=no` from its
// sources).
func apkTool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PARADROP_APK")
	if p == "" {
		p, _ = exec.LookPath("apk")
	}
	if p != "" {
		if out, err := exec.Command(p, "--version").Output(); err == nil && strings.HasPrefix(string(out), "apk-tools 3") {
			return p
		}
	}
	t.Skip("no apk-tools 3 (set PARADROP_APK): the .apk is not made")
	return ""
}

// The .apk holds the same control data and files as the .ipk, in the
// format apk-tools 3 itself reads back, and apk installs it into a
// scratch root: every file where it belongs, with its mode, the
// conffile declared as OpenWrt's apk tooling expects.
func TestAPK(t *testing.T) {
	apk := apkTool(t)
	bin := tinyBinary(t, "mipsle")
	out, args := testArgs(t, "mipsle", bin, "-apk", apk)
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(out, "mipsel_24kc", "paradrop-0.42~abcdef12-r1.apk")
	dump, err := exec.Command(apk, "adbdump", "--format", "json", pkg).Output()
	if err != nil {
		t.Fatalf("adbdump: %v", err)
	}
	var d struct {
		Info struct {
			Name, Version, Arch, License, Maintainer, Description string
			Depends                                               []string
		}
		Paths []struct {
			Name string
			ACL  struct {
				Mode        int
				User, Group string
			}
			Files []struct {
				Name string
				ACL  struct {
					Mode        int
					User, Group string
				}
			}
		}
		Scripts map[string]string
	}
	if err := json.Unmarshal(dump, &d); err != nil {
		t.Fatal(err)
	}
	deps := append([]string(nil), depends...)
	sort.Strings(deps)
	if d.Info.Name != "paradrop" || d.Info.Version != "0.42~abcdef12-r1" || d.Info.Arch != "mipsel_24kc" ||
		d.Info.License != "Apache-2.0" || d.Info.Maintainer != "Test <test@example.org>" ||
		!strings.Contains(d.Info.Description, "ParaDrop") || !reflect.DeepEqual(d.Info.Depends, deps) {
		t.Errorf("info %+v", d.Info)
	}
	modes := map[string]int{}
	for _, p := range d.Paths {
		if p.ACL.User != "root" || p.ACL.Group != "root" {
			t.Errorf("/%s owned by %s:%s", p.Name, p.ACL.User, p.ACL.Group)
		}
		for _, f := range p.Files {
			modes[filepath.Join("/", p.Name, f.Name)] = f.ACL.Mode
			if f.ACL.User != "root" || f.ACL.Group != "root" {
				t.Errorf("%s/%s owned by %s:%s", p.Name, f.Name, f.ACL.User, f.ACL.Group)
			}
		}
	}
	want := map[string]int{
		"/usr/bin/paradrop": 0o755, "/etc/init.d/paradrop": 0o755, "/etc/config/paradrop": 0o644,
		"/etc/hotplug.d/net/50-paradrop": 0o644, "/lib/apk/packages/paradrop.list": 0o644,
		"/lib/apk/packages/paradrop.conffiles": 0o644, "/lib/apk/packages/paradrop.conffiles_static": 0o644,
	}
	if !reflect.DeepEqual(modes, want) {
		t.Errorf("files %v\nwant  %v (modes in decimal)", modes, want)
	}
	for _, s := range []string{"post-install", "post-upgrade", "pre-deinstall"} {
		if !strings.Contains(d.Scripts[s], "/lib/functions.sh") {
			t.Errorf("script %s: %q", s, d.Scripts[s])
		}
	}

	// Install it, with empty stand-ins for its dependencies.
	root, deps2 := t.TempDir(), t.TempDir()
	pkgs := []string{pkg}
	for _, dep := range depends {
		files := filepath.Join(deps2, dep)
		os.MkdirAll(files, 0o755)
		p := filepath.Join(deps2, dep+"-1-r1.apk")
		if out, err := exec.Command(apk, "mkpkg", "--info", "name:"+dep, "--info", "version:1-r1", "--info", "arch:mipsel_24kc",
			"--files", files, "--output", p).CombinedOutput(); err != nil {
			t.Fatalf("stand-in %s: %v %s", dep, err, out)
		}
		pkgs = append(pkgs, p)
	}
	install := append([]string{"--root", root, "--initdb", "--allow-untrusted", "--no-network", "--no-scripts", "--arch", "mipsel_24kc", "add"}, pkgs...)
	if out, err := exec.Command(apk, install...).CombinedOutput(); err != nil {
		t.Fatalf("apk add: %v: %s", err, out)
	}
	for path, mode := range want {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil || int(fi.Mode().Perm()) != mode {
			t.Errorf("installed %s: %v %v", path, fi, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(root, "usr/bin/paradrop"))
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil || f.Machine != elf.EM_MIPS || f.ByteOrder != binary.LittleEndian {
		t.Errorf("installed binary: %v", err)
	}
	conf, _ := os.ReadFile(filepath.Join(root, "lib/apk/packages/paradrop.conffiles"))
	static, _ := os.ReadFile(filepath.Join(root, "lib/apk/packages/paradrop.conffiles_static"))
	list, _ := os.ReadFile(filepath.Join(root, "lib/apk/packages/paradrop.list"))
	if string(conf) != "/etc/config/paradrop\n" || !strings.HasPrefix(string(static), "/etc/config/paradrop ") ||
		string(list) != "/etc/config/paradrop\n/etc/hotplug.d/net/50-paradrop\n/etc/init.d/paradrop\n/usr/bin/paradrop\n" {
		t.Errorf("conffiles %q, static %q, list %q", conf, static, list)
	}
	if out, err := exec.Command(apk, "--root", root, "info", "-e", "paradrop").CombinedOutput(); err != nil {
		t.Errorf("apk info -e paradrop: %v %s", err, out)
	}

	// The operator edits the file; an upgrade keeps it, the new default
	// beside it as apk does for protected paths.
	out2, args := testArgs(t, "mipsle", bin, "-apk", apk, "-version", "0.43~abcdef12-r1")
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	edited := []byte("config paradrop 'main'\n\toption data '/mnt/sda1/paradrop'\n")
	os.WriteFile(filepath.Join(root, "etc/config/paradrop"), edited, 0o644)
	upgrade := []string{"--root", root, "--allow-untrusted", "--no-network", "--no-scripts", "add",
		filepath.Join(out2, "mipsel_24kc", "paradrop-0.43~abcdef12-r1.apk")}
	if out, err := exec.Command(apk, upgrade...).CombinedOutput(); err != nil {
		t.Fatalf("apk upgrade: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/config/paradrop")); !bytes.Equal(b, edited) {
		t.Error("the upgrade replaced the operator's /etc/config/paradrop")
	}
	shipped, _ := os.ReadFile(filepath.Join("files", "paradrop.config"))
	if b, _ := os.ReadFile(filepath.Join(root, "etc/config/paradrop.apk-new")); !bytes.Equal(b, shipped) {
		t.Error("the new default is not beside it as paradrop.apk-new")
	}
	if out, _ := exec.Command(apk, "--root", root, "info", "paradrop").CombinedOutput(); !strings.Contains(string(out), "0.43~abcdef12-r1") {
		t.Errorf("not upgraded: %s", out)
	}
}
