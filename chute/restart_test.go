package chute

import (
	"strings"
	"testing"

	"paradrop/store"
)

// A daemon that dies during an install leaves the change unfinished. Once
// the install had committed, the next daemon's recovery finishes it, and
// the change says how that went rather than "failed" over a running chute;
// an install that had not committed fails, saying nothing was installed.
func TestInstallInterruptedByRestartTellsTheTruth(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, dir)
	done := g.install(pkg(t, counterV1, nil))
	g.shutdown()

	// What a daemon killed at those points leaves in the store.
	db, err := store.Open(dir + "/paradrop.db")
	if err != nil {
		t.Fatal(err)
	}
	committed := done
	committed.State, committed.Ended = ChangeRun, nil
	uncommitted := Change{ID: done.ID + 1, Chute: "never", Action: "install", State: ChangeRun, Created: done.Created}
	for _, c := range []Change{committed, uncommitted} {
		if err := db.Put(store.Changes, store.IDKey(c.ID), c); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	g = newGateway(t, dir)
	defer g.removeAll()
	c := g.wait(committed, nil)
	if c.State != ChangeDone {
		t.Errorf("committed install after a restart: %s %q, want done", c.State, c.Error)
	}
	if in, _ := g.m.Get("counter"); in.State != Running {
		t.Errorf("chute %s after recovery", in.State)
	}
	if steps(c) == "" || !strings.Contains(steps(c), "recovering") {
		t.Errorf("steps do not say what happened: %s", steps(c))
	}
	c = g.wait(uncommitted, nil)
	if c.State != ChangeError || !strings.Contains(c.Error, "nothing installed") {
		t.Errorf("uncommitted install after a restart: %s %q", c.State, c.Error)
	}
}
