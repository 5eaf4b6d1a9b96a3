package tenant

import (
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"paradrop/store"
)

func newRegistry(t *testing.T) *Registry {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db)
}

func pubKey(t *testing.T) string {
	t.Helper()
	pk, _, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pk.String()
}

func TestTokenLifecycle(t *testing.T) {
	r := newRegistry(t)
	d, tok, err := r.Create(Spec{Name: "acme", Keys: []string{pubKey(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Lookup(tok); err != nil || got != "acme" {
		t.Fatalf("Lookup = %q, %v; want acme", got, err)
	}
	// Only the hash is kept: the token appears nowhere in the store.
	var found bool
	r.db.View(func(tx *store.Tx) error {
		for _, b := range []store.Bucket{store.Developers, store.Tokens} {
			tx.ForEach(b, func(k string, raw []byte) error {
				found = found || strings.Contains(k+string(raw), tok)
				return nil
			})
		}
		return nil
	})
	if found {
		t.Fatal("the token is stored in clear")
	}

	exp := time.Now().Add(time.Hour)
	tk2, tok2, err := r.AddToken("acme", &exp)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeToken("acme", d.Tokens[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(tok); !errors.Is(err, ErrDenied) {
		t.Fatalf("revoked token: %v, want ErrDenied", err)
	}
	if got, err := r.Lookup(tok2); err != nil || got != "acme" {
		t.Fatalf("second token = %q, %v", got, err)
	}
	r.now = func() time.Time { return exp }
	if _, err := r.Lookup(tok2); !errors.Is(err, ErrDenied) {
		t.Fatalf("expired token: %v, want ErrDenied", err)
	}
	r.now = time.Now
	if err := r.RevokeToken("acme", tk2.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeToken("acme", tk2.ID); !errors.Is(err, ErrNoToken) {
		t.Fatalf("revoke twice: %v", err)
	}

	_, tok3, _ := r.AddToken("acme", nil)
	if err := r.Delete("acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(tok3); !errors.Is(err, ErrDenied) {
		t.Fatalf("token of a deleted developer: %v", err)
	}
	// A developer of the same name made again does not inherit old tokens.
	if _, _, err := r.Create(Spec{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(tok3); !errors.Is(err, ErrDenied) {
		t.Fatalf("old token works for a new developer of the same name: %v", err)
	}
	for _, bad := range []string{"", "x", tok3 + "0", strings.Repeat("a", 1<<16)} {
		if _, err := r.Lookup(bad); !errors.Is(err, ErrDenied) {
			t.Errorf("Lookup(%.20q) = %v", bad, err)
		}
	}
}

func TestSpecRefused(t *testing.T) {
	r := newRegistry(t)
	many := make([]string, MaxKeys+1)
	for i := range many {
		many[i] = pubKey(t)
	}
	for _, s := range []Spec{
		{Name: ""}, {Name: "Acme"}, {Name: "../x"}, {Name: strings.Repeat("a", 33)},
		{Name: "a", Keys: []string{"not a key"}},
		{Name: "a", Keys: []string{pubKey(t) + "x"}},
		{Name: "a", Keys: many},
		{Name: "a", Quota: Quota{Chutes: -1}},
		{Name: "a", Quota: Quota{Memory: -1}},
	} {
		if _, _, err := r.Create(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%.40q) = %v, want ErrInvalid", s.Name, err)
		}
	}
	// A whole .pub file is kept as its key line.
	key := pubKey(t)
	if d, _, err := r.Create(Spec{Name: "a", Keys: []string{"untrusted comment: minisign public key\n" + key + "\n"}}); err != nil || d.Keys[0] != key {
		t.Fatalf("Create with a .pub file = %q, %v", d.Keys, err)
	}
	if _, _, err := r.Create(Spec{Name: "a"}); !errors.Is(err, ErrExists) {
		t.Fatalf("twice: %v", err)
	}
	if _, err := r.Set("a", Spec{Name: "b"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rename: %v", err)
	}
	for i := 1; i < MaxTokens; i++ {
		if _, _, err := r.AddToken("a", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.AddToken("a", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token %d: %v", MaxTokens+1, err)
	}
	past := time.Now().Add(-time.Second)
	if _, _, err := r.AddToken("a", &past); !errors.Is(err, ErrInvalid) {
		t.Fatalf("expired at birth: %v", err)
	}
}
