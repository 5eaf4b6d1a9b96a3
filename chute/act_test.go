package chute

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestActorMayAct(t *testing.T) {
	for _, c := range []struct {
		actor Actor
		name  string
		owner Owner
		want  bool
	}{
		{"operator", "x", "", true},
		{"operator", "x", "acme", true},
		{"", "x", "acme", true},
		{"developer:acme", "x", "acme", true},
		{"developer:acme", "x", "beta", false},
		{"developer:acme", "x", "", false},
		{"developer:", "x", "", false},
		{"chute:x", "x", "acme", true},
		{"chute:x", "y", "acme", false},
		{"chute:", "", "", false},
		{"Operator", "x", "", false},
		{"developer", "x", "", false},
		{"somebody:acme", "x", "acme", false},
	} {
		if got := c.actor.MayAct(c.name, c.owner); got != c.want {
			t.Errorf("%q on %s of %q: %v, want %v", c.actor, c.name, c.owner, got, c.want)
		}
	}
}

// The API checks a chute's owner, then calls the manager: in between, the
// chute may be removed and installed again under its name by another
// developer. Here that interleaving is made on purpose: every call acme
// makes after it, as the API would once its check passed, reaches beta's
// chute and must be refused as for a chute that does not exist, with
// nothing done; a log acme follows ends with its chute, before beta's
// lines. The same holds for a removal asked while beta's install of the
// name is still under way.
func TestDeveloperCallsAfterTheChuteChangedHands(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	ctx := context.Background()
	talker := func(who string) []byte {
		return pkg(t, `
name: talker
version: 1.0.0
command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo `+who+` $i; sleep 0.1; done"]
`, nil)
	}
	g.mustDo(g.m.Install(ctx, bytes.NewReader(talker("acme")), Origin{Owner: "acme", Actor: "developer:acme"}))
	eventually(t, 10*time.Second, "acme's lines", func() bool {
		var b bytes.Buffer
		g.m.Logs(ctx, "talker", "developer:acme", 0, false, &b)
		return strings.Contains(b.String(), "acme 2")
	})
	first, err := g.m.Get("talker")
	if err != nil || first.Installed == nil {
		t.Fatalf("acme's chute: %+v, %v", first, err)
	}
	followCtx, stopFollow := context.WithTimeout(ctx, 30*time.Second)
	defer stopFollow()
	var followed bytes.Buffer // read once the follow has returned
	followDone := make(chan error, 1)
	go func() { followDone <- g.m.Logs(followCtx, "talker", "developer:acme", 0, true, &followed) }()

	// The name changes hands: the operator removes acme's chute and beta
	// installs its own under the same name.
	g.mustDo(g.m.Remove("talker", false, "operator"))
	select {
	case err := <-followDone:
		if err != nil {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acme's follow goes on after its chute was removed")
	}
	g.mustDo(g.m.Install(ctx, bytes.NewReader(talker("beta")), Origin{Owner: "beta", Actor: "developer:beta"}))
	eventually(t, 10*time.Second, "beta's lines", func() bool {
		var b bytes.Buffer
		g.m.Logs(ctx, "talker", "developer:beta", 0, false, &b)
		return strings.Contains(b.String(), "beta 2")
	})
	if strings.Contains(followed.String(), "beta") {
		t.Errorf("acme's follow showed beta's log: %q", followed.String())
	}

	before := len(g.m.Changes())
	acme := Actor("developer:acme")
	var logs bytes.Buffer
	for what, err := range map[string]error{
		"start":     second(g.m.Start("talker", acme)),
		"stop":      second(g.m.Stop("talker", acme)),
		"restart":   second(g.m.Restart("talker", acme)),
		"remove":    second(g.m.Remove("talker", true, acme)),
		"resources": second(g.m.SetResources("talker", ResourceRequest{Policy: Policy{Pids: ptr(64)}}, acme)),
		"update":    second(g.m.Update(ctx, "talker", bytes.NewReader(talker("acme2")), true, Origin{Owner: "acme", Actor: acme})),
		"logs":      g.m.Logs(ctx, "talker", acme, 0, false, &logs),
	} {
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `chute "talker": no such chute`) {
			t.Errorf("acme's %s of beta's chute: %v, want it as a chute that does not exist", what, err)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("acme read beta's log: %q", logs.String())
	}
	if n := len(g.m.Changes()); n != before {
		t.Errorf("%d changes recorded for refused calls", n-before)
	}
	in, err := g.m.Get("talker")
	if err != nil || in.Owner != "beta" || in.State != Running || in.Restarts != 0 {
		t.Fatalf("beta's chute after acme's calls: %+v, %v", in, err)
	}
	// What was measured of the name before is told apart by this.
	if in.Installed == nil || !in.Installed.After(*first.Installed) {
		t.Errorf("beta's chute installed at %v, acme's at %v", in.Installed, first.Installed)
	}

	// A removal asked while an install of the name is under way: hold
	// the chute's queue so that beta's install stays under way.
	g.mustDo(g.m.Remove("talker", false, "developer:beta"))
	release := make(chan struct{})
	g.m.enqueue("talker", job{run: func(context.Context, *progress) error { <-release; return nil }})
	installing, err := g.m.Install(ctx, bytes.NewReader(talker("beta")), Origin{Owner: "beta", Actor: "developer:beta"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.m.Remove("talker", false, acme)
	close(release)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("acme removes beta's chute being installed: %v", err)
	}
	g.mustDo(installing, nil)
	if in, err := g.m.Get("talker"); err != nil || in.Owner != "beta" {
		t.Fatalf("beta's chute after acme's removal: %+v, %v", in, err)
	}
}

// Names are the gateway's: an install of a name another developer's chute
// has is refused without saying whose or what it is; one's own chute is
// named as existing.
func TestInstallOfATakenName(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	ctx := context.Background()
	g.mustDo(g.m.Install(ctx, bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "acme", Actor: "developer:acme"}))
	for _, c := range []struct {
		owner Owner
		actor Actor
		taken bool
	}{
		{"beta", "developer:beta", true},
		{"acme", "developer:acme", false},
		{"", "operator", false},
	} {
		_, err := g.m.Install(ctx, bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: c.owner, Actor: c.actor})
		if !errors.Is(err, ErrExists) || errors.Is(err, ErrNameTaken) != c.taken || strings.Contains(err.Error(), "acme") {
			t.Errorf("%s installs acme's name: %v", c.actor, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// A deleted developer's kept data is dropped, not left for a new developer
// given the same name: that one starts empty. Others' kept data stays.
func TestDropKept(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	ctx := context.Background()
	g.mustDo(g.m.Install(ctx, bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "acme", Actor: "developer:acme"}))
	eventually(t, 10*time.Second, "first run", func() bool { return readData(g, "counter", "n") == "1" })
	g.mustDo(g.m.Remove("counter", true, "developer:acme"))

	if names, err := g.m.DropKept("beta"); err != nil || len(names) != 0 {
		t.Fatalf("beta's kept data: %v, %v", names, err)
	}
	if names, err := g.m.DropKept(""); err != nil || len(names) != 0 {
		t.Fatalf("the operator's kept data: %v, %v", names, err)
	}
	names, err := g.m.DropKept("acme")
	if err != nil || len(names) != 1 || names[0] != "counter" {
		t.Fatalf("acme's kept data: %v, %v", names, err)
	}
	for _, p := range []string{g.m.paths.keptImage("counter"), g.m.paths.keptSlot("counter")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
	// A new acme installs the name: its count starts again.
	g.mustDo(g.m.Install(ctx, bytes.NewReader(pkg(t, counterV1, nil)), Origin{Owner: "acme", Actor: "developer:acme"}))
	eventually(t, 10*time.Second, "the new acme's run", func() bool { return readData(g, "counter", "n") != "" })
	if n := readData(g, "counter", "n"); n != "1" {
		t.Errorf("the new acme's chute counted %q: it was given the deleted acme's data", n)
	}
}
