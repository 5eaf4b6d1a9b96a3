package chute

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// Two updates queued back to back: the older version, checked only against
// what was installed when it was queued, must not silently downgrade the
// chute once the newer one has run.
func TestQueuedOlderUpdateDoesNotDowngrade(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, counterV1, nil))

	v103 := strings.Replace(counterV1, "1.0.0", "1.0.3", 1)
	v102 := strings.Replace(counterV1, "1.0.0", "1.0.2", 1)
	// Hold the chute's queue so that both updates are queued before
	// either runs, however busy the machine.
	release := make(chan struct{})
	g.m.enqueue("counter", job{run: func(context.Context, *progress) error { <-release; return nil }})
	first, err := g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v103, nil)), false, Origin{})
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	second, err := g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v102, nil)), false, Origin{})
	close(release)
	if err != nil {
		t.Fatalf("1.0.2 over installed 1.0.0 is refused at once (%v); it must be queued", err)
	}
	if c := g.wait(first, nil); c.State != ChangeDone {
		t.Fatalf("update to 1.0.3: %s", c.Error)
	}
	c := g.wait(second, nil)
	if c.State != ChangeError || !strings.Contains(c.Error, "not newer than installed 1.0.3") {
		t.Errorf("update to 1.0.2 after 1.0.3: state %s, error %q; want failed, not newer", c.State, c.Error)
	}
	if in, _ := g.m.Get("counter"); in.Version != "1.0.3" || in.State != Running {
		t.Errorf("after both updates: version %s state %s, want 1.0.3 running", in.Version, in.State)
	}
	// With force, the downgrade is the operator's choice and runs.
	g.mustDo(g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v102, nil)), true, Origin{}))
	if in, _ := g.m.Get("counter"); in.Version != "1.0.2" {
		t.Errorf("forced downgrade: version %s", in.Version)
	}
	_, err = g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v102, nil)), false, Origin{})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("same version again: %v, want ErrConflict", err)
	}
}

// A removal asked while the install runs waits for it and removes the
// chute, rather than answering "no such chute" and letting it be.
func TestRemoveDuringInstall(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	inst, err := g.m.Install(context.Background(), bytes.NewReader(pkg(t, counterV1, nil)), Origin{})
	if err != nil {
		t.Fatal(err)
	}
	rm, err := g.m.Remove("counter", false, "")
	if err != nil {
		t.Fatalf("remove during the install: %v", err)
	}
	if c := g.wait(inst, nil); c.State != ChangeDone {
		t.Errorf("install: %s", c.Error)
	}
	if c := g.wait(rm, nil); c.State != ChangeDone {
		t.Errorf("remove: %s", c.Error)
	}
	if _, err := g.m.Get("counter"); !errors.Is(err, ErrNotFound) {
		t.Errorf("chute still there after the removal: %v", err)
	}
	if _, err := os.Stat(g.m.paths.chute("counter")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("chute directory left: %v", err)
	}
}
