// Package signaturetest makes minisign keys and signatures for tests with
// Debian's minisign tool, so that an independent signer proves interop.
package signaturetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Key is a password-less minisign key pair in a test's temporary directory.
type Key struct {
	Pub     string // the .pub file's content
	PubFile string
	SecFile string
}

// Line is the public key's base64 line.
func (k Key) Line() string {
	lines := strings.Split(strings.TrimSpace(k.Pub), "\n")
	return lines[len(lines)-1]
}

// NewKey generates a key pair with `minisign -G -W`.
func NewKey(t testing.TB) Key {
	t.Helper()
	dir := t.TempDir()
	k := Key{PubFile: filepath.Join(dir, "k.pub"), SecFile: filepath.Join(dir, "k.sec")}
	run(t, "-G", "-W", "-p", k.PubFile, "-s", k.SecFile)
	b, err := os.ReadFile(k.PubFile)
	if err != nil {
		t.Fatal(err)
	}
	k.Pub = string(b)
	return k
}

// Sign signs file with `minisign -S` and returns the .minisig content.
func (k Key) Sign(t testing.TB, file string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sig.minisig")
	run(t, "-S", "-s", k.SecFile, "-m", file, "-x", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SignBytes writes data to a file and signs it.
func (k Key) SignBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pkg")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return k.Sign(t, f)
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Fatal("minisign is not installed (apt-get install minisign)")
	}
	cmd := exec.Command("minisign", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minisign %v: %v\n%s", args, err, out)
	}
}

// SignLegacy signs file with minisign's legacy, not prehashed, algorithm.
func (k Key) SignLegacy(t testing.TB, file string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sig.minisig")
	run(t, "-S", "-l", "-s", k.SecFile, "-m", file, "-x", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
