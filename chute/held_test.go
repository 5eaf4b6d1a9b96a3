package chute

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Held packages are each owner's own, the most recent maxHeld of them,
// and go with their developer.
func TestHeldPackages(t *testing.T) {
	g := newGatewayWith(t, t.TempDir(), func(c *Config) { c.MaxUpload = 1 << 10 })
	defer g.removeAll()
	hold := func(owner Owner, content string) string {
		f := filepath.Join(t.TempDir(), "pkg")
		os.WriteFile(f, []byte(content), 0o600)
		sum, err := fileSum(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.m.holdPackage(owner, sum, f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // mtimes apart
		return sum
	}
	acme, beta := hold("acme", "a"), hold("beta", "b")
	if !g.m.HoldsPackage("acme", acme) || g.m.HoldsPackage("beta", acme) || g.m.HoldsPackage("", acme) {
		t.Errorf("acme's package held for: acme %v, beta %v, the operator %v", g.m.HoldsPackage("acme", acme), g.m.HoldsPackage("beta", acme), g.m.HoldsPackage("", acme))
	}
	if g.m.HoldsPackage("acme", "../beta/"+beta) || g.m.HoldsPackage("acme", "") {
		t.Error("a name that is not a hash is held")
	}
	if _, err := g.m.DropKept("acme"); err != nil {
		t.Fatal(err)
	}
	if g.m.HoldsPackage("acme", acme) || !g.m.HoldsPackage("beta", beta) {
		t.Errorf("after acme's deletion: acme's held %v, beta's %v", g.m.HoldsPackage("acme", acme), g.m.HoldsPackage("beta", beta))
	}
	var sums []string
	for i := range maxHeld {
		sums = append(sums, hold("", fmt.Sprint(i)))
	}
	if g.m.HoldsPackage("beta", beta) || !g.m.HoldsPackage("", sums[0]) || !g.m.HoldsPackage("", sums[maxHeld-1]) {
		t.Errorf("beyond %d: the oldest still held %v", maxHeld, g.m.HoldsPackage("beta", beta))
	}
	// Beyond the upload limit's bytes, all told, the oldest go too.
	big := hold("", strings.Repeat("x", int(g.m.cfg.MaxUpload)))
	if !g.m.HoldsPackage("", big) || g.m.HoldsPackage("", sums[maxHeld-1]) {
		t.Errorf("beyond %d bytes: the newest held %v, the one before %v", g.m.cfg.MaxUpload, g.m.HoldsPackage("", big), g.m.HoldsPackage("", sums[maxHeld-1]))
	}
}
