package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// gunzip is b's content, failing the test on a stream gzip does not read.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// With -zopfli the .ipk holds the same files, byte for byte, in a smaller
// data.tar.gz that gzip reads; the build stays reproducible.
func TestIPKZopfli(t *testing.T) {
	z, err := exec.LookPath("zopfli")
	if err != nil {
		t.Skip("no zopfli (apt-get install zopfli; make deps installs it)")
	}
	const target = "mipsle"
	bin := tinyBinary(t, target)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	ipk := "paradrop_0.42~abcdef12-r1_mipsel_24kc.ipk"
	build := func(extra ...string) []byte {
		out, args := testArgs(t, target, bin, extra...)
		if err := run(args); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, ipk))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain, zop := build(), build("-zopfli", z)
	_, po := untarGz(t, plain)
	names, zo := untarGz(t, zop)
	if len(names) != 3 || !bytes.Equal(po["./control.tar.gz"].data, zo["./control.tar.gz"].data) {
		t.Errorf("outer members %q, or control differs", names)
	}
	pd, zd := po["./data.tar.gz"].data, zo["./data.tar.gz"].data
	if !bytes.Equal(gunzip(t, pd), gunzip(t, zd)) {
		t.Error("zopfli's data.tar is not gzip -9's")
	}
	if len(zd) >= len(pd) {
		t.Errorf("zopfli's data.tar.gz is %d bytes, gzip -9's %d", len(zd), len(pd))
	}
	// GNU gzip reads it too, with its checksum.
	f := filepath.Join(t.TempDir(), "data.tar.gz")
	os.WriteFile(f, zd, 0o644)
	if out, err := exec.Command("gzip", "-t", f).CombinedOutput(); err != nil {
		t.Errorf("gzip -t: %v %s", err, out)
	}
	if again := build("-zopfli", z); !bytes.Equal(again, zop) {
		t.Error("a second zopfli build differs")
	}
}

// A zopfli that fails leaves no package behind and says why.
func TestIPKZopfliFails(t *testing.T) {
	bin := tinyBinary(t, "mipsle")
	out, args := testArgs(t, "mipsle", bin, "-zopfli", "/bin/false")
	err := run(args)
	if err == nil {
		t.Fatal("a failing zopfli made a package")
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*")); len(m) != 0 {
		t.Errorf("left %q", m)
	}
	t.Log(err)
}
