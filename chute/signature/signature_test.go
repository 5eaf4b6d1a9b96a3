package signature_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/chute/signature"
	"paradrop/chute/signature/signaturetest"
)

func TestVerify(t *testing.T) {
	good, other := signaturetest.NewKey(t), signaturetest.NewKey(t)
	pkg := bytes.Repeat([]byte("package bytes "), 10000)
	sig := good.SignBytes(t, pkg)
	otherSig := other.SignBytes(t, pkg)
	trusted, err := signature.ParseKeys([]byte(good.Pub))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(pkg)
	corrupt[len(corrupt)/2] ^= 1
	// The trusted comment is signed: changing it breaks the signature.
	tampered := bytes.Replace(sig, []byte("\ntrusted comment: "), []byte("\ntrusted comment: x"), 1)
	// A flipped byte in the base64 of the signature itself.
	lines := strings.Split(string(sig), "\n")
	b := []byte(lines[1])
	b[20] = map[bool]byte{true: 'A', false: 'B'}[b[20] != 'A']
	lines[1] = string(b)
	badSig := []byte(strings.Join(lines, "\n"))

	for _, tc := range []struct {
		name string
		pkg  []byte
		sig  []byte
		keys []signature.Key
		want error
	}{
		{"good", pkg, sig, trusted, nil},
		{"corrupted package", corrupt, sig, trusted, signature.ErrBadSignature},
		{"trusted comment tampered", pkg, tampered, trusted, signature.ErrBadSignature},
		{"signature bytes changed", pkg, badSig, trusted, signature.ErrBadSignature},
		{"untrusted key", pkg, otherSig, trusted, signature.ErrUnknownKey},
		{"no keys at all", pkg, sig, nil, signature.ErrUnknownKey},
		{"missing", pkg, nil, trusted, signature.ErrMissing},
		{"garbage", pkg, []byte("not a signature\n"), trusted, signature.ErrMalformed},
		{"oversized", pkg, append(bytes.Clone(sig), bytes.Repeat([]byte{' '}, signature.MaxSize)...), trusted, signature.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := signature.ParseSignature(tc.sig)
			var k signature.Key
			if err == nil {
				k, err = signature.Verify(bytes.NewReader(tc.pkg), s, tc.keys)
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && k.ID() != trusted[0].ID() {
				t.Fatalf("signed by %s, want %s", k.ID(), trusted[0].ID())
			}
		})
	}
}

// The ID is printed as minisign prints it, so an operator can match it
// against `minisign -G`'s output and the .pub file's comment.
func TestKeyIDAsMinisignPrintsIt(t *testing.T) {
	k := signaturetest.NewKey(t)
	key, err := signature.ParseKey(k.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(k.Pub, "minisign public key "+key.ID()) {
		t.Fatalf("ID %s not in %q", key.ID(), k.Pub)
	}
	if key.String() != k.Line() {
		t.Fatalf("String() = %q, want %q", key.String(), k.Line())
	}
	if _, err := signature.ParseKey(k.Line()); err != nil {
		t.Fatalf("bare line: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	a, b := signaturetest.NewKey(t), signaturetest.NewKey(t)
	for _, tc := range []struct {
		name string
		text string
		n    int
		err  error
	}{
		{"two pub files", a.Pub + b.Pub, 2, nil},
		{"lines with comments and blanks", "# operator\n\n" + a.Line() + "\r\n  " + b.Line() + "  \n", 2, nil},
		{"empty", "", 0, nil},
		{"garbage line", a.Line() + "\nnot-a-key\n", 0, signature.ErrMalformed},
		{"truncated key", a.Line()[:30], 0, signature.ErrMalformed},
		{"signature is not a key", "RUS14KybahsS40j3TLfeuJJC++M38GU1r6VjpUlpVKwKqy/lHHLzqYlpARovjHdcA0/cjnxUQ9oJSsDwn+5BBxnrFAeBfGZP9AU=", 0, signature.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := signature.ParseKeys([]byte(tc.text))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && len(keys) != tc.n {
				t.Fatalf("%d keys, want %d", len(keys), tc.n)
			}
		})
	}
	if _, err := signature.ParseKey(a.Pub + b.Pub); !errors.Is(err, signature.ErrMalformed) {
		t.Fatalf("two keys as one: %v", err)
	}
}

// A legacy (not prehashed) signature is refused as malformed: verifying it
// would need the whole package in memory.
func TestLegacySignatureRefused(t *testing.T) {
	k := signaturetest.NewKey(t)
	f := t.TempDir() + "/pkg"
	if err := writeFile(f, []byte("x")); err != nil {
		t.Fatal(err)
	}
	sig := k.SignLegacy(t, f)
	if _, err := signature.ParseSignature(sig); !errors.Is(err, signature.ErrMalformed) || !strings.Contains(err.Error(), "legacy") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("untrusted comment: minisign public key E3121B6A9BACE0B5\nRWS14KybahsS47bwnO2MeoU9xRgp5UI/qzHP2U+hTuHoiZwkGPxUrJvU\n"))
	f.Add([]byte("# c\n\nRWS14KybahsS47bwnO2MeoU9xRgp5UI/qzHP2U+hTuHoiZwkGPxUrJvU"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := signature.ParseKeys(b)
		if err != nil {
			return
		}
		for _, k := range keys {
			again, err := signature.ParseKey(k.String())
			if err != nil || again.ID() != k.ID() {
				t.Fatalf("key %s does not round-trip: %v", k, err)
			}
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Add([]byte("untrusted comment: signature from minisign secret key\nRUS14KybahsS40j3TLfeuJJC++M38GU1r6VjpUlpVKwKqy/lHHLzqYlpARovjHdcA0/cjnxUQ9oJSsDwn+5BBxnrFAeBfGZP9AU=\ntrusted comment: timestamp:1796568350\tfile:f\thashed\nubrue3vofWegos+8EV00E/P9DHZ91WLetX3uUecHFoDQUtxu+zraBe/qYN8nSPEKchbq9ZcYA0GMPak4xjqcAQ==\n"))
	f.Add([]byte("untrusted comment: \n\ntrusted comment: \n\n"))
	key, err := signature.ParseKey("RWS14KybahsS47bwnO2MeoU9xRgp5UI/qzHP2U+hTuHoiZwkGPxUrJvU")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := signature.ParseSignature(b)
		if err != nil {
			return
		}
		// Whatever parses must verify or fail with a typed error, never panic.
		_, err = signature.Verify(bytes.NewReader(b), s, []signature.Key{key})
		if err != nil && !errors.Is(err, signature.ErrUnknownKey) && !errors.Is(err, signature.ErrBadSignature) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

func writeFile(name string, b []byte) error { return os.WriteFile(name, b, 0o600) }

// Sign makes what the minisign tool verifies, with a key the tool made.
func TestSignInterop(t *testing.T) {
	k := signaturetest.NewKey(t)
	sec, err := os.ReadFile(k.SecFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pkg := filepath.Join(dir, "app.tgz")
	if err := os.WriteFile(pkg, bytes.Repeat([]byte("pkg"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pkg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sig, err := signature.Sign(f, pkg, sec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pkg+".minisig", sig, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("minisign", "-V", "-p", k.PubFile, "-m", pkg).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}
	if _, err := signature.Sign(bytes.NewReader(nil), "x", []byte("garbage")); err == nil {
		t.Fatal("garbage key accepted")
	}
}
