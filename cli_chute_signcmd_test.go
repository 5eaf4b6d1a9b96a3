package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/chute/signature/signaturetest"
)

// `paradrop chute sign` writes what the minisign tool itself accepts, and
// refuses to clobber a signature or sign without a key.
func TestChuteSign(t *testing.T) {
	key := signaturetest.NewKey(t)
	dir := t.TempDir()
	pkg := filepath.Join(dir, "app.tgz")
	if err := os.WriteFile(pkg, []byte("a package's bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		out, errb := &bytes.Buffer{}, &bytes.Buffer{}
		env := &cliEnv{stdin: strings.NewReader(""), stdout: out, stderr: errb, getenv: func(string) string { return "" }}
		return chuteMain(env, append([]string{"sign"}, args...)), out.String(), errb.String()
	}
	for _, c := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{pkg}, 2, "--key"},
		{[]string{pkg, "--key", filepath.Join(dir, "missing.sec")}, 1, "missing.sec"},
		{[]string{pkg, "--key", key.PubFile}, 1, key.PubFile},
		{[]string{filepath.Join(dir, "missing.tgz"), "--key", key.SecFile}, 1, "missing.tgz"},
	} {
		if rc, _, errs := run(c.args...); rc != c.rc || !strings.Contains(errs, c.msg) {
			t.Errorf("sign %q: rc %d %q, want %d naming %q", c.args, rc, errs, c.rc, c.msg)
		}
	}
	if rc, out, errs := run(pkg, "--key", key.SecFile); rc != 0 || !strings.Contains(out, "signed by key") {
		t.Fatalf("sign: rc %d %q %q", rc, out, errs)
	}
	// The real minisign verifies it against the public key.
	if out, err := exec.Command("minisign", "-V", "-p", key.PubFile, "-m", pkg).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}
	if rc, _, errs := run(pkg, "--key", key.SecFile); rc != 1 || !strings.Contains(errs, "--force") {
		t.Errorf("second sign without --force: rc %d %q", rc, errs)
	}
	other := filepath.Join(dir, "other.minisig")
	if rc, _, errs := run(pkg, "--key", key.SecFile, "-o", other); rc != 0 {
		t.Fatalf("sign -o: %q", errs)
	}
	// A changed package no longer verifies: the signature covers its bytes.
	if err := os.WriteFile(pkg, []byte("another package"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("minisign", "-V", "-p", key.PubFile, "-m", pkg, "-x", other).CombinedOutput(); err == nil {
		t.Errorf("minisign -V accepted a changed package:\n%s", out)
	}
}
