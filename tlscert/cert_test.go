package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	names := Names{IPs: []net.IP{net.ParseIP("192.0.2.1")}, Hosts: []string{"gw.example"}}
	now := time.Now()
	c, err := EnsureSelfSigned(dir, names, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Made {
		t.Error("first call: Made false")
	}
	pub, ok := c.Leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", c.Leaf.PublicKey)
	}
	if m := c.Missing(names); len(m) != 0 {
		t.Errorf("the certificate does not name %v", m)
	}
	if d := c.Leaf.NotAfter.Sub(now); d < Validity-time.Minute || d > Validity+time.Minute {
		t.Errorf("valid for %v, want %v", d, Validity)
	}
	fi, err := os.Stat(filepath.Join(dir, Dir, keyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}

	// Later starts reuse it, even for other addresses: clients pinned it.
	again, err := EnsureSelfSigned(dir, Names{IPs: []net.IP{net.ParseIP("198.51.100.1")}}, now.Add(time.Hour))
	if err != nil || again.Made || again.Fingerprint != c.Fingerprint {
		t.Fatalf("second start: made %v, fingerprint %v (was %v), %v", again.Made, again.Fingerprint, c.Fingerprint, err)
	}
	if m := again.Missing(Names{IPs: []net.IP{net.ParseIP("198.51.100.1")}}); len(m) != 1 {
		t.Errorf("Missing of a new address: %v", m)
	}
	// An expired one is replaced.
	late, err := EnsureSelfSigned(dir, names, now.Add(Validity+time.Hour))
	if err != nil || !late.Made || late.Fingerprint == c.Fingerprint {
		t.Fatalf("start after expiry: made %v, same fingerprint %v, %v", late.Made, late.Fingerprint == c.Fingerprint, err)
	}
}

// A damaged pair is not silently replaced: clients pinned it.
func TestSelfSignedDamaged(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsureSelfSigned(dir, Names{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, Dir, keyFile))
	if _, err := EnsureSelfSigned(dir, Names{}, time.Now()); err == nil || !strings.Contains(err.Error(), "remove") {
		t.Errorf("certificate without its key: %v, want an error saying what to remove", err)
	}
	// A key without a certificate is a start that died half-way: made anew.
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, Dir), 0o700)
	os.WriteFile(filepath.Join(dir, Dir, keyFile), []byte("partial"), 0o600)
	if c, err := EnsureSelfSigned(dir, Names{}, time.Now()); err != nil || !c.Made {
		t.Errorf("key without a certificate: %v", err)
	}
}

func TestFingerprintForms(t *testing.T) {
	var f Fingerprint
	for i := range f {
		f[i] = byte(i * 7)
	}
	s := f.String()
	if len(s) != 95 || strings.ToUpper(s) != s {
		t.Fatalf("String: %q", s)
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, ":", ""), "sha256:" + s, "SHA256:" + s, "sha256 Fingerprint=" + s, " " + s + "\n"} {
		got, err := ParseFingerprint(in)
		if err != nil || got != f {
			t.Errorf("ParseFingerprint(%q) = %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "AB:CD", s + ":00", strings.Replace(s, "0", "G", 1), "md5:" + s} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
}

func TestKnownGateways(t *testing.T) {
	k := KnownGateways{Path: filepath.Join(t.TempDir(), "conf", "known_gateways")}
	if _, ok, err := k.Lookup("192.0.2.1:8080"); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	a, b := Fingerprint{1}, Fingerprint{2}
	if err := k.Pin("192.0.2.1:8080", a); err != nil {
		t.Fatal(err)
	}
	if err := k.Pin("GW.example:443", b); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := k.Lookup("gw.example:443"); !ok || got != b || err != nil {
		t.Errorf("lookup: %v %v %v", got, ok, err)
	}
	if err := k.Pin("192.0.2.1:8080", b); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := k.Lookup("192.0.2.1:8080"); got != b {
		t.Errorf("re-pinned: %v", got)
	}
	fi, err := os.Stat(k.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v %v", fi.Mode(), err)
	}
	os.WriteFile(k.Path, []byte("192.0.2.1:8080\n"), 0o600)
	if _, _, err := k.Lookup("192.0.2.1:8080"); err == nil || !strings.Contains(err.Error(), k.Path) {
		t.Errorf("malformed file: %v, want an error naming it", err)
	}
}

func FuzzParseKnown(f *testing.F) {
	f.Add("# c\n192.0.2.1:8080 " + Fingerprint{}.String() + "\n\n")
	f.Add("x y z\n")
	f.Fuzz(func(t *testing.T, s string) {
		pins, err := ParseKnown(strings.NewReader(s))
		if err != nil {
			return
		}
		for a, fp := range pins {
			if got, err := ParseFingerprint(fp.String()); err != nil || got != fp || strings.ContainsAny(a, " \t\n") {
				t.Fatalf("entry %q %v does not round-trip: %v", a, fp, err)
			}
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(Fingerprint{}.String())
	f.Add("sha256:00")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err == nil {
			if again, err := ParseFingerprint(fp.String()); err != nil || again != fp {
				t.Fatalf("%q: %v does not round-trip", s, fp)
			}
		}
	})
}
