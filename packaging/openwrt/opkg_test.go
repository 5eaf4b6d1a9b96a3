package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// opkgTool is OpenWrt's opkg (opkg-lede's opkg-cl), named by
// $PARADROP_OPKG: Debian has none (build it with cmake from its sources
// and libubox's).
func opkgTool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PARADROP_OPKG")
	if p == "" {
		t.Skip("no OpenWrt opkg (set PARADROP_OPKG to opkg-lede's opkg-cl)")
	}
	return p
}

// OpenWrt's own opkg installs the .ipk into a scratch root, registers
// /etc/config/paradrop as a conffile with its checksum, and an upgrade
// keeps the operator's edit of it.
func TestOPKG(t *testing.T) {
	opkg := opkgTool(t)
	bin := tinyBinary(t, "mipsle")
	out1, args := testArgs(t, "mipsle", bin)
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	out2, args := testArgs(t, "mipsle", bin, "-version", "0.43~abcdef12-r1")
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "var/lock"), 0o755)
	conf := filepath.Join(dir, "opkg.conf")
	os.WriteFile(conf, []byte("dest root /\narch all 1\narch noarch 1\narch mipsel_24kc 10\n"), 0o644)
	// install fails on any message opkg collects but the one expected.
	install := func(expected string, ipks ...string) {
		t.Helper()
		out, err := exec.Command(opkg, append([]string{"-f", conf, "-o", root, "install"}, ipks...)...).CombinedOutput()
		_, errs, _ := strings.Cut(string(out), "Collected errors:\n")
		for _, l := range strings.Split(errs, "\n") {
			if strings.HasPrefix(l, " * ") && (expected == "" || !strings.Contains(l, expected)) {
				t.Errorf("opkg: %s", l)
			}
		}
		if err != nil {
			t.Fatalf("opkg install %s: %v: %s", ipks, err, out)
		}
	}
	// Empty stand-ins for the dependencies, which opkg will not do without.
	pkgs := []string{filepath.Join(out1, "paradrop_0.42~abcdef12-r1_mipsel_24kc.ipk")}
	for _, dep := range depends {
		p := filepath.Join(dir, dep+".ipk")
		if err := writeIPK(p, meta{Name: dep, Version: "1-r1", Arch: "mipsel_24kc"}, nil, nil); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	install("", pkgs...)
	for path, mode := range map[string]os.FileMode{
		"usr/bin/paradrop": 0o755, "etc/init.d/paradrop": 0o755, "etc/config/paradrop": 0o644, "etc/hotplug.d/net/50-paradrop": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("installed /%s: %v %v", path, fi, err)
		}
	}
	shipped, _ := os.ReadFile(filepath.Join("files", "paradrop.config"))
	sum := sha256.Sum256(shipped)
	status, _ := os.ReadFile(filepath.Join(root, "usr/lib/opkg/status"))
	for _, want := range []string{"Package: paradrop\n", "Version: 0.42~abcdef12-r1\n", "Status: install user installed\n",
		"Architecture: mipsel_24kc\n", "Conffiles:\n /etc/config/paradrop " + hex.EncodeToString(sum[:]) + "\n"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	// The operator edits the file; the upgrade keeps it.
	edited := strings.Replace(string(shipped), "option data '/srv/paradrop'", "option data '/mnt/sda1/paradrop'", 1)
	os.WriteFile(filepath.Join(root, "etc/config/paradrop"), []byte(edited), 0o644)
	install("The new conffile will be placed at "+root+"/etc/config/paradrop-opkg", filepath.Join(out2, "paradrop_0.43~abcdef12-r1_mipsel_24kc.ipk"))
	if b, _ := os.ReadFile(filepath.Join(root, "etc/config/paradrop")); string(b) != edited {
		t.Error("the upgrade replaced the operator's /etc/config/paradrop")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/config/paradrop-opkg")); string(b) != string(shipped) {
		t.Error("the new default is not beside it as paradrop-opkg")
	}
	status, _ = os.ReadFile(filepath.Join(root, "usr/lib/opkg/status"))
	if !strings.Contains(string(status), "Version: 0.43~abcdef12-r1\n") {
		t.Errorf("not upgraded:\n%s", status)
	}
}
