package chute

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A chute keeps the owner it was installed by through updates, restarts
// and a new daemon, and every change of it says whose chute it is.
func TestOwnerKept(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, dir)
	c := g.mustDo(g.m.Install(context.Background(), bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "acme", Actor: "developer:acme"}))
	v2 := strings.Replace(counterV1, "1.0.0", "1.1.0", 1)
	u := g.mustDo(g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v2, nil)), false, Origin{}))
	r := g.mustDo(g.m.Restart("counter", "operator"))
	for _, ch := range []Change{c, u, r} {
		if ch.Owner != "acme" {
			t.Errorf("%s change: owner %q, want acme", ch.Action, ch.Owner)
		}
	}
	if c.Actor != "developer:acme" || r.Actor != "operator" {
		t.Errorf("actors: install %q, restart %q", c.Actor, r.Actor)
	}
	// As the store keeps them, for GET /changes after a restart.
	for _, ch := range g.m.Changes() {
		if ch.ID == c.ID && ch.Actor != "developer:acme" {
			t.Errorf("stored install change: actor %q", ch.Actor)
		}
	}
	g.shutdown()
	g = newGateway(t, dir)
	defer g.removeAll()
	if in, err := g.m.Get("counter"); err != nil || in.Owner != "acme" || in.Version != "1.1.0" {
		t.Fatalf("after a new daemon: %+v, %v", in, err)
	}
	if l := g.m.List(); len(l) != 1 || l[0].Owner != "acme" {
		t.Errorf("List = %+v", l)
	}
}

// Data kept by one owner's removal is not handed to a chute of the same
// name installed by another owner: it stays aside for its owner.
func TestKeptDataStaysWithItsOwner(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, dir)
	defer func() { g.removeAll() }() // the last g
	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "acme"}))
	eventually(t, 10*time.Second, "first run", func() bool { return readData(g, "counter", "n") == "1" })
	g.mustDo(g.m.Remove("counter", true, ""))

	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "beta"}))
	eventually(t, 10*time.Second, "beta's run", func() bool { return readData(g, "counter", "n") != "" })
	if n := readData(g, "counter", "n"); n != "1" {
		t.Fatalf("beta's chute counted %q: it was given acme's kept data", n)
	}
	g.mustDo(g.m.Remove("counter", false, ""))

	// A daemon restart keeps whose it is.
	g.shutdown()
	g = newGateway(t, dir)
	g.mustDo(g.m.Install(context.Background(), bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "acme"}))
	eventually(t, 10*time.Second, "acme's second run", func() bool { return readData(g, "counter", "n") == "2" })
}
