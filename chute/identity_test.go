package chute

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

const identChute = `
name: ident
version: 1.0.0
command: ["/bin/sh", "-c", "cat /paradrop/token > /data/file; echo $PARADROP_TOKEN > /data/env; touch /data/done; exec sleep 1000"]
`

// tokenOf is the token the chute's current run read from /paradrop/token
// and from $PARADROP_TOKEN, which must agree. It removes what the run
// wrote, for the next run to write afresh.
func tokenOf(t *testing.T, g *gateway, name string) string {
	t.Helper()
	var file, env string
	eventually(t, 10*time.Second, "the chute to write its token", func() bool {
		_, err := os.Stat(filepath.Join(g.m.paths.data(name), "done"))
		return err == nil
	})
	file, env = readData(g, name, "file"), readData(g, name, "env")
	for _, f := range []string{"file", "env", "done"} {
		os.Remove(filepath.Join(g.m.paths.data(name), f))
	}
	if file != env {
		t.Fatalf("/paradrop/token %q, $PARADROP_TOKEN %q", file, env)
	}
	return file
}

func TestChuteTokenRotatedAndRevoked(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, dir)
	defer func() { g.removeAll() }()
	g.install(pkg(t, identChute, nil))
	first := tokenOf(t, g, "ident")
	if len(first) < 32 {
		t.Fatalf("token %q is too short to be unguessable", first)
	}
	if n, ok := g.m.ChuteOfToken(first); !ok || n != "ident" {
		t.Fatalf("the chute's token names %q, %v", n, ok)
	}
	if _, ok := g.m.ChuteOfToken(first + "x"); ok {
		t.Error("a wrong token names a chute")
	}
	st, err := os.Stat(filepath.Join(g.m.paths.policy("ident"), tokenFile))
	if err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("token file: %v, %v; want 0400", st, err)
	}

	// A daemon restart re-adopts the running chute with its token.
	g.shutdown()
	g = newGateway(t, dir)
	eventually(t, 10*time.Second, "re-adoption", func() bool {
		n, ok := g.m.ChuteOfToken(first)
		return ok && n == "ident"
	})

	g.mustDo(g.m.Restart("ident", ""))
	second := tokenOf(t, g, "ident")
	if second == first {
		t.Fatal("the token was not rotated by a restart")
	}
	if _, ok := g.m.ChuteOfToken(first); ok {
		t.Error("the last run's token is still accepted")
	}
	if n, ok := g.m.ChuteOfToken(second); !ok || n != "ident" {
		t.Errorf("the new token names %q, %v", n, ok)
	}

	g.mustDo(g.m.Stop("ident", ""))
	if _, ok := g.m.ChuteOfToken(second); ok {
		t.Error("a stopped chute's token is still accepted")
	}
	if _, err := os.Stat(filepath.Join(g.m.paths.policy("ident"), tokenFile)); !os.IsNotExist(err) {
		t.Errorf("a stopped chute's token file: %v", err)
	}
	g.mustDo(g.m.Start("ident", ""))
	third := tokenOf(t, g, "ident")
	g.mustDo(g.m.Remove("ident", false, ""))
	if _, ok := g.m.ChuteOfToken(third); ok {
		t.Error("a removed chute's token is still accepted")
	}
}
