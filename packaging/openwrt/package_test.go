package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// goEnv is how `make cross` builds each target.
var goEnv = map[string][]string{
	"386":    {"GOARCH=386"},
	"armv7":  {"GOARCH=arm", "GOARM=7"},
	"arm64":  {"GOARCH=arm64"},
	"mipsle": {"GOARCH=mipsle", "GOMIPS=softfloat"},
	"mips":   {"GOARCH=mips", "GOMIPS=softfloat"},
}

// tinyBinary cross-builds a small static program for target: the package
// takes any binary, and a small one keeps the test quick.
func tinyBinary(t *testing.T, target string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"paradrop\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "paradrop")
	cmd := exec.Command(goTool(), "build", "-trimpath", "-o", bin, "main.go")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0", "GO111MODULE=off"), goEnv[target]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build for %s: %v: %s", target, err, out)
	}
	return bin
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// tarFile is a member of a tar.
type tarFile struct {
	hdr  *tar.Header
	data []byte
}

// untarGz reads a gzipped tar, members in order.
func untarGz(t *testing.T, b []byte) ([]string, map[string]tarFile) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	m := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, m
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		m[h.Name] = tarFile{h, data}
	}
}

// testArgs package bin for target into a fresh directory.
func testArgs(t *testing.T, target, bin string, extra ...string) (string, []string) {
	out := t.TempDir()
	return out, append([]string{"-target", target, "-bin", bin, "-out", out, "-version", "0.42~abcdef12-r1",
		"-maintainer", "Test <test@example.org>", "-license", "Apache-2.0"}, extra...)
}

// The .ipk is what ipkg-build makes and opkg reads: every member, field,
// path, mode and owner as expected, the conffile declared, and the binary
// inside for the package's CPU.
func TestIPK(t *testing.T) {
	const target = "mipsle"
	bin := tinyBinary(t, target)
	out, args := testArgs(t, target, bin)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	ipk := filepath.Join(out, "paradrop_0.42~abcdef12-r1_mipsel_24kc.ipk")
	b, err := os.ReadFile(ipk)
	if err != nil {
		t.Fatal(err)
	}
	// GNU tar reads it too (opkg's libarchive-less unpacker is tar's format).
	if out, err := exec.Command("tar", "-tzf", ipk).CombinedOutput(); err != nil || string(out) != "./debian-binary\n./data.tar.gz\n./control.tar.gz\n" {
		t.Errorf("tar -tzf: %v %q", err, out)
	}
	names, outer := untarGz(t, b)
	if !reflect.DeepEqual(names, []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"}) {
		t.Fatalf("outer members %q", names)
	}
	if got := string(outer["./debian-binary"].data); got != "2.0\n" {
		t.Errorf("debian-binary %q", got)
	}

	dataNames, data := untarGz(t, outer["./data.tar.gz"].data)
	want := map[string]int64{
		"./": 0o755, "./etc/": 0o755, "./etc/config/": 0o755, "./etc/config/paradrop": 0o644,
		"./etc/hotplug.d/": 0o755, "./etc/hotplug.d/net/": 0o755, "./etc/hotplug.d/net/50-paradrop": 0o644,
		"./etc/init.d/": 0o755, "./etc/init.d/paradrop": 0o755,
		"./usr/": 0o755, "./usr/bin/": 0o755, "./usr/bin/paradrop": 0o755,
	}
	if len(data) != len(want) {
		t.Errorf("data holds %q", dataNames)
	}
	for name, mode := range want {
		f, ok := data[name]
		switch {
		case !ok:
			t.Errorf("data lacks %s", name)
		case f.hdr.Mode != mode || f.hdr.Uid != 0 || f.hdr.Gid != 0 || f.hdr.Uname != "root" || f.hdr.ModTime.Unix() != 1700000000:
			t.Errorf("%s: mode %o uid %d gid %d %q mtime %v", name, f.hdr.Mode, f.hdr.Uid, f.hdr.Gid, f.hdr.Uname, f.hdr.ModTime)
		case strings.HasSuffix(name, "/") != (f.hdr.Typeflag == tar.TypeDir):
			t.Errorf("%s: type %c", name, f.hdr.Typeflag)
		}
	}
	for src, dst := range map[string]string{"paradrop.init": "./etc/init.d/paradrop", "paradrop.config": "./etc/config/paradrop", "paradrop.hotplug": "./etc/hotplug.d/net/50-paradrop"} {
		if b, _ := os.ReadFile(filepath.Join("files", src)); !bytes.Equal(b, data[dst].data) {
			t.Errorf("%s is not files/%s", dst, src)
		}
	}
	binData, _ := os.ReadFile(bin)
	if !bytes.Equal(data["./usr/bin/paradrop"].data, binData) {
		t.Error("/usr/bin/paradrop is not the binary given")
	}
	f, err := elf.NewFile(bytes.NewReader(data["./usr/bin/paradrop"].data))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_MIPS || f.Class != elf.ELFCLASS32 || f.ByteOrder != binary.LittleEndian {
		t.Errorf("binary inside is %v %v %v", f.Machine, f.Class, f.ByteOrder)
	}

	ctlNames, ctl := untarGz(t, outer["./control.tar.gz"].data)
	if !reflect.DeepEqual(ctlNames, []string{"./", "./conffiles", "./control", "./postinst", "./prerm"}) {
		t.Errorf("control members %q", ctlNames)
	}
	for name, mode := range map[string]int64{"./control": 0o644, "./conffiles": 0o644, "./postinst": 0o755, "./prerm": 0o755} {
		if ctl[name].hdr.Mode != mode {
			t.Errorf("%s mode %o", name, ctl[name].hdr.Mode)
		}
	}
	if got := string(ctl["./conffiles"].data); got != "/etc/config/paradrop\n" {
		t.Errorf("conffiles %q", got)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(ctl["./control"].data), "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok || fields[k] != "" {
			t.Fatalf("control line %q", line)
		}
		fields[k] = v
	}
	var rawData bytes.Buffer
	zr, _ := gzip.NewReader(bytes.NewReader(outer["./data.tar.gz"].data))
	io.Copy(&rawData, zr)
	wantFields := map[string]string{
		"Package": "paradrop", "Version": "0.42~abcdef12-r1", "Architecture": "mipsel_24kc",
		"Depends":    "openvswitch, kmod-veth, kmod-loop, kmod-fs-ext4, e2fsprogs, resize2fs, kmod-nft-nat",
		"Maintainer": "Test <test@example.org>", "License": "Apache-2.0", "Section": "net",
		"Installed-Size": strconv.Itoa(rawData.Len()),
	}
	for k, v := range wantFields {
		if fields[k] != v {
			t.Errorf("control %s = %q, want %q", k, fields[k], v)
		}
	}
	if !strings.Contains(fields["Description"], "ParaDrop") || len(fields) != len(wantFields)+1 {
		t.Errorf("control fields %q", fields)
	}
	for _, s := range []string{"postinst", "prerm"} {
		if !strings.Contains(string(ctl["./"+s].data), "default_"+s+" $0 $@") {
			t.Errorf("%s does not call default_%s:\n%s", s, s, ctl["./"+s].data)
		}
	}

	// The same input makes the same bytes: a rebuild can be checked.
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(ipk); !bytes.Equal(again, b) {
		t.Error("a second build differs")
	}
}

// A package whose binary would not run on its arch is not made, nor one
// with a version opkg or apk would misorder.
func TestPackageRefused(t *testing.T) {
	bin := tinyBinary(t, "mipsle")
	for _, tc := range []struct {
		target string
		extra  []string
		want   string
	}{
		{"mips", nil, "not EM_MIPS ELFCLASS32 BigEndian"},
		{"arm64", nil, "as aarch64_generic needs"},
		{"mipsle", []string{"-version", "v1.2"}, "-version"},
		{"mipsle", []string{"-version", "1.2-dirty-r1"}, "-version"},
		{"sparc", nil, "-target"},
		{"mipsle", []string{"-license", ""}, "-license"},
	} {
		out, args := testArgs(t, tc.target, bin, tc.extra...)
		err := run(args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.target, tc.extra, err, tc.want)
		}
		if left, _ := os.ReadDir(out); len(left) != 0 {
			t.Errorf("%s %q left %d files", tc.target, tc.extra, len(left))
		}
	}
}
