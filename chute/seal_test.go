package chute

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"paradrop/chute/signature"
	"paradrop/chute/signature/signaturetest"
)

const sealedV1 = "name: sealed\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n"
const sealedV2 = "name: sealed\nversion: 1.1.0\ncommand: [/bin/sleep, \"1000\"]\n"

// A refused package leaves nothing: no chute, nothing in staging (neither
// the copy kept for verification nor an unpacked tree).
func TestSealRefusesBeforeUnpacking(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	trusted, stranger := signaturetest.NewKey(t), signaturetest.NewKey(t)
	keys, err := signature.ParseKeys([]byte(trusted.Pub))
	if err != nil {
		t.Fatal(err)
	}
	v1 := pkg(t, sealedV1, nil)
	goodSig := trusted.SignBytes(t, v1)
	corrupt := bytes.Clone(v1)
	corrupt[len(corrupt)-100] ^= 0xff

	for _, tc := range []struct {
		name string
		pkg  []byte
		seal Seal
		want error
	}{
		{"missing when required", v1, Seal{Keys: keys, Required: true}, signature.ErrMissing},
		{"corrupted package", corrupt, Seal{Signature: goodSig, Keys: keys}, signature.ErrBadSignature},
		{"untrusted key, not required", v1, Seal{Signature: stranger.SignBytes(t, v1), Keys: keys}, signature.ErrUnknownKey},
		{"signature after the package, package corrupted", corrupt, Seal{Keys: keys, Trailer: func() ([]byte, error) { return goodSig, nil }}, signature.ErrBadSignature},
		{"no signature after the package, required", v1, Seal{Keys: keys, Required: true, Trailer: func() ([]byte, error) { return nil, nil }}, signature.ErrMissing},
		{"upload broken after the package", v1, Seal{Keys: keys, Trailer: func() ([]byte, error) { return nil, ErrInvalid }}, ErrInvalid},
		{"malformed", v1, Seal{Signature: []byte("untrusted comment: x\nnope\n"), Keys: keys, Required: true}, signature.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.m.Install(context.Background(), bytes.NewReader(tc.pkg), Origin{Seal: tc.seal})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if _, err := g.m.Get("sealed"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("chute after refusal: %v", err)
			}
			assertStagingEmpty(t, g)
		})
	}

	// A valid signature: installed, and the key recorded and shown.
	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(v1), Origin{Seal: Seal{Signature: goodSig, Keys: keys, Required: true}}))
	if in, _ := g.m.Get("sealed"); in.SignedBy != keys[0].ID() {
		t.Fatalf("signed_by = %q, want %q", in.SignedBy, keys[0].ID())
	}
	assertStagingEmpty(t, g)

	// An update signed by a stranger is refused and the installed version
	// keeps its signer; an unsigned one, allowed, clears it.
	v2 := pkg(t, sealedV2, nil)
	_, err = g.m.Update(context.Background(), "sealed", bytes.NewReader(v2), false, Origin{Seal: Seal{Signature: stranger.SignBytes(t, v2), Keys: keys}})
	if !errors.Is(err, signature.ErrUnknownKey) {
		t.Fatalf("update by a stranger: %v", err)
	}
	assertStagingEmpty(t, g)
	g.mustDo(g.m.Update(context.Background(), "sealed", bytes.NewReader(v2), false, Origin{Seal: Seal{Keys: keys}}))
	if in, _ := g.m.Get("sealed"); in.Version != "1.1.0" || in.SignedBy != "" {
		t.Fatalf("after unsigned update: %+v", in)
	}
}

func assertStagingEmpty(t *testing.T, g *gateway) {
	t.Helper()
	ents, err := os.ReadDir(g.m.paths.staging())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Fatalf("staging holds %s", strings.Join(names, ", "))
	}
}
