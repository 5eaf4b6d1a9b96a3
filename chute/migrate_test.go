package chute

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
)

const moverScript = `#!/bin/sh
[ -f /data/payload ] || { head -c 300000 /dev/urandom > /data/payload; mkdir -p /data/d; echo kept > /data/d/note; }
exec sleep 1000
`

// flipAt flips one byte of a stream, at offset at.
type flipAt struct {
	r   io.Reader
	off int64
	at  int64
}

func (f *flipAt) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

// inProcess is a Destination straight into another manager's Import, the
// stream passed through wrap, confirmed as the API does.
func inProcess(t *testing.T, to *gateway, wrap func(io.Reader) io.Reader) Destination {
	return Destination{URL: "gw-b", Send: func(ctx context.Context, stream io.Reader, x Exchange) error {
		if to.m.HoldsPackage("", x.Package) {
			x.Held()
		}
		ch, err := to.m.Import(ctx, wrap(stream), Origin{Actor: "operator"}, x.Admitted)
		if err != nil {
			return err
		}
		c := to.wait(ch, nil)
		if c.State != ChangeDone {
			return errors.New(c.Error)
		}
		in, err := to.m.Get(c.Chute)
		if err != nil {
			return err
		}
		return to.m.ConfirmImport(c.Chute, in.Migration)
	}, Landed: landedOn(to)}
}

// landedOn is the Landed of a Destination to.
func landedOn(to *gateway) func(ctx context.Context, name, id string) (bool, error) {
	return func(ctx context.Context, name, id string) (bool, error) {
		in, err := to.m.Get(name)
		switch {
		case errors.Is(err, ErrNotFound):
			return false, nil
		case err != nil:
			return false, err
		case in.Migration != id:
			return false, nil
		case in.Unconfirmed:
			return false, errors.New("undecided")
		}
		return true, nil
	}
}

// twoGateways is a source and a target, each with its own data directory,
// the target's chutes under a cgroup parent named with suffix; both
// removed when the test ends.
func twoGateways(t *testing.T, suffix string) (a, b *gateway) {
	a = newGateway(t, t.TempDir())
	t.Cleanup(a.removeAll)
	parentB := testCgroupParent + suffix
	b = newGatewayWith(t, t.TempDir(), func(c *Config) { c.CgroupParent = parentB })
	t.Cleanup(func() {
		b.removeAll()
		if g, err := cgroup.Load(parentB); err == nil {
			g.Delete()
		}
	})
	return a, b
}

// TestMigrateLeavesOneCopy: a stream altered on the way is refused by the
// target, which keeps nothing of it (no chute, no staging, no mount, the
// name and the room free again), and the source runs its chute again with
// its /data; the same move unaltered leaves the chute on the target alone,
// its /data the same, under the manifest's limits rather than a live
// policy the source's operator set.
func TestMigrateLeavesOneCopy(t *testing.T) {
	a, b := twoGateways(t, "-b")
	p := pkg(t, "name: mover\nversion: 1.0.0\ncommand: [/bin/sh, /mover.sh]\nstop_grace: 200ms\nresources: {disk: 8Mi}\n", map[string]string{"mover.sh": moverScript})
	a.install(p)
	eventually(t, 10*time.Second, "the payload", func() bool { return readData(a, "mover", "d/note") == "kept" })
	payload := readData(a, "mover", "payload")

	// A chute installed before packages were kept is not sent half.
	rec, _ := a.m.entry("mover")
	kept := filepath.Join(a.m.paths.version("mover", rec.rec.Dir), keptPackage)
	os.Rename(kept, kept+".aside")
	ch, err := a.m.Migrate("mover", "operator", "gw-a", Destination{URL: "gw-b", Send: func(context.Context, io.Reader, Exchange) error {
		t.Error("sent without its package")
		return nil
	}})
	c := a.wait(ch, err)
	if c.State != ChangeError || !strings.Contains(c.Error, "update it first") {
		t.Errorf("without its package: %+v", c)
	}
	os.Rename(kept+".aside", kept)

	// A live policy A's operator sets holds on A, not on B, whose
	// operator owns B's policy: there the manifest's limits apply.
	free := cpuQuota(t, a, "mover")
	own, err := a.m.Resources("mover")
	if err != nil {
		t.Fatal(err)
	}
	a.mustDo(a.m.SetResources("mover", ResourceRequest{Policy: Policy{CPUMax: ptr(0.2)}, Grace: ptr(manifest.Duration(0))}, ""))
	if q := cpuQuota(t, a, "mover"); q != 0.2 {
		t.Fatalf("A's policy: quota %v cores, want 0.2", q)
	}

	flip := func(r io.Reader) io.Reader { return &flipAt{r: r, at: int64(len(p)) + 100_000} }
	c = a.wait(a.m.Migrate("mover", "operator", "gw-a", inProcess(t, b, flip)))
	if c.State != ChangeError || !strings.Contains(c.Error, "does not match the manifest") {
		t.Fatalf("an altered stream: %+v", c)
	}
	if in, err := a.m.Get("mover"); err != nil || in.State != Running || readData(a, "mover", "payload") != payload {
		t.Errorf("on A after the refusal: %+v %v", in, err)
	}
	if q := cpuQuota(t, a, "mover"); q != 0.2 {
		t.Errorf("A's policy after the refusal: quota %v cores, want 0.2", q)
	}
	if _, err := b.m.Get("mover"); !errors.Is(err, ErrNotFound) {
		t.Errorf("B kept a chute: %v", err)
	}
	if ents, _ := os.ReadDir(b.m.paths.staging()); len(ents) != 0 {
		t.Errorf("B's staging not empty: %v", ents)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), b.dir) {
		t.Errorf("B left a mount:\n%s", mi)
	}
	if q := b.m.HeldBy(""); q.Chutes != 0 {
		t.Errorf("B still holds %+v for the refused chute", q)
	}

	c = a.wait(a.m.Migrate("mover", "operator", "gw-a", inProcess(t, b, func(r io.Reader) io.Reader { return r })))
	if c.State != ChangeDone {
		t.Fatalf("the move: %s (steps %v)", c.Error, c.Steps)
	}
	if _, err := a.m.Get("mover"); !errors.Is(err, ErrNotFound) {
		t.Errorf("A kept its copy: %v", err)
	}
	in, err := b.m.Get("mover")
	if err != nil || in.State != Running {
		t.Fatalf("on B: %+v %v", in, err)
	}
	if readData(b, "mover", "payload") != payload || readData(b, "mover", "d/note") != "kept" {
		t.Errorf("B's /data differs from A's")
	}
	if got := b.m.migratedFrom("mover"); got != "gw-a" {
		t.Errorf("migrated from %q", got)
	}
	if q := cpuQuota(t, b, "mover"); q != free {
		t.Errorf("on B: quota %v cores, want the manifest's %v", q, free)
	}
	if r, err := b.m.Resources("mover"); err != nil || r != own {
		t.Errorf("on B: resources %+v, %v; want the manifest's %+v", r, err, own)
	}

	// Back to A, which holds the package the chute left there: only its
	// /data moves, and A no longer holds it (the chute keeps its own).
	c = b.wait(b.m.Migrate("mover", "operator", "gw-b", inProcess(t, a, func(r io.Reader) io.Reader { return r })))
	if c.State != ChangeDone {
		t.Fatalf("the move back: %s (steps %v)", c.Error, c.Steps)
	}
	var said bool
	for _, st := range c.Steps {
		said = said || strings.HasPrefix(st.Message, "the target holds the package")
		if strings.HasPrefix(st.Message, "sent the package") {
			t.Errorf("the package was sent back: %s", st.Message)
		}
	}
	if !said {
		t.Errorf("the steps do not say the package was held: %v", c.Steps)
	}
	if in, err := a.m.Get("mover"); err != nil || in.State != Running || readData(a, "mover", "payload") != payload {
		t.Errorf("on A again: %+v %v", in, err)
	}
	if sum := mustSum(t, p); !b.m.HoldsPackage("", sum) || a.m.HoldsPackage("", sum) {
		t.Errorf("held after the move back: by B (left) %v, by A (running it) %v", b.m.HoldsPackage("", sum), a.m.HoldsPackage("", sum))
	}
}

func mustSum(t *testing.T, b []byte) string {
	f := filepath.Join(t.TempDir(), "p")
	os.WriteFile(f, b, 0o600)
	s, err := fileSum(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stallCheck records the longest a Read of the stream waited for the
// source.
type stallCheck struct {
	r       io.Reader
	longest time.Duration
}

func (s *stallCheck) Read(p []byte) (int, error) {
	t := time.Now()
	n, err := s.r.Read(p)
	s.longest = max(s.longest, time.Since(t))
	return n, err
}

// TestMigrateKeepsTheStreamMoving: while the source waits on its chute
// (the handover grace, then its stop), the stream still moves, so a
// target's stall rule does not drop it.
func TestMigrateKeepsTheStreamMoving(t *testing.T) {
	defer func(d time.Duration) { keepAliveEvery = d }(keepAliveEvery)
	keepAliveEvery = 300 * time.Millisecond
	a, b := twoGateways(t, "-b2")
	a.install(pkg(t, "name: slow\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nstop_grace: 2s\n", nil))
	var sc *stallCheck
	c := a.wait(a.m.Migrate("slow", "operator", "gw-a", inProcess(t, b, func(r io.Reader) io.Reader {
		sc = &stallCheck{r: r}
		return sc
	})))
	if c.State != ChangeDone {
		t.Fatalf("the move: %s (steps %v)", c.Error, c.Steps)
	}
	if sc.longest > time.Second {
		t.Errorf("the stream stalled for %s while the chute was told (grace 2s) and stopped", sc.longest)
	}
}

// cutAfterImport is a Destination into to whose answer never reaches the
// source: the stream is imported there (and confirmed, with confirm),
// then the source's side blocks until its daemon stops, as if the link
// or the source died just then. The source asks through landedOn while
// its daemon runs.
func cutAfterImport(t *testing.T, to *gateway, confirm bool, imported chan<- struct{}) Destination {
	d := inProcess(t, to, func(r io.Reader) io.Reader { return r })
	send := d.Send
	if !confirm {
		send = func(ctx context.Context, stream io.Reader, x Exchange) error {
			ch, err := to.m.Import(ctx, stream, Origin{Actor: "operator"}, x.Admitted)
			if err != nil {
				return err
			}
			to.wait(ch, nil)
			return nil
		}
	}
	d.Send = func(ctx context.Context, stream io.Reader, x Exchange) error {
		if err := send(ctx, stream, x); err != nil {
			return err
		}
		close(imported)
		<-ctx.Done()
		return errors.New("connection reset by peer")
	}
	landed := d.Landed
	d.Landed = func(ctx context.Context, name, id string) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err // the daemon is stopping: nothing is asked
		}
		return landed(ctx, name, id)
	}
	return d
}

// TestMigrateInterruptedLeavesOneCopy: the source daemon dies once all
// was sent and before it heard the answer (the chute stopped here). If
// the target kept the chute, the restarted source asks, and removes its
// copy; if the target had not confirmed it and restarts, the target
// removes its copy, and the source, asking, runs the chute again with
// its /data. Either way exactly one copy runs.
func TestMigrateInterruptedLeavesOneCopy(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	parentB := testCgroupParent + "-b3"
	var b *gateway
	reopen := func(c *Config) {
		c.Reopen = func(json.RawMessage) (Destination, error) { return Destination{URL: "gw-b", Landed: landedOn(b)}, nil }
	}
	a := newGatewayWith(t, dirA, reopen)
	b = newGatewayWith(t, dirB, func(c *Config) { c.CgroupParent = parentB })
	defer func() {
		a.removeAll()
		b.removeAll()
		if g, err := cgroup.Load(parentB); err == nil {
			g.Delete()
		}
	}()
	p := pkg(t, "name: mover\nversion: 1.0.0\ncommand: [/bin/sh, /mover.sh]\nstop_grace: 200ms\nresources: {disk: 8Mi}\n", map[string]string{"mover.sh": moverScript})
	a.install(p)
	eventually(t, 10*time.Second, "the payload", func() bool { return readData(a, "mover", "d/note") == "kept" })
	payload := readData(a, "mover", "payload")
	running := func(g *gateway) bool {
		in, err := g.m.Get("mover")
		return err == nil && in.State == Running && syscall.Kill(in.Pid, 0) == nil
	}
	gone := func(g *gateway) bool {
		_, err := g.m.Get("mover")
		return errors.Is(err, ErrNotFound)
	}

	// Kept on B, unconfirmed: B restarts and removes it, A runs it again.
	imported := make(chan struct{})
	a.m.Migrate("mover", "operator", "gw-a", cutAfterImport(t, b, false, imported))
	<-imported
	if in, _ := b.m.Get("mover"); !in.Unconfirmed || in.State != Running {
		t.Fatalf("on B before it confirmed: %+v", in)
	}
	pidB, _ := b.m.Get("mover")
	a.shutdown()
	b.shutdown()
	b = newGatewayWith(t, dirB, func(c *Config) { c.CgroupParent = parentB })
	eventually(t, 10*time.Second, "B removes the unconfirmed chute", func() bool { return gone(b) })
	if syscall.Kill(pidB.Pid, 0) == nil {
		t.Errorf("B's unconfirmed chute (pid %d) still runs", pidB.Pid)
	}
	a = newGatewayWith(t, dirA, reopen)
	eventually(t, 15*time.Second, "A runs it again", func() bool { return running(a) })
	if readData(a, "mover", "payload") != payload {
		t.Errorf("A's /data changed")
	}
	if rec, _ := a.m.entry("mover"); rec.rec.Outbound != nil {
		t.Errorf("A still has the migration: %+v", rec.rec.Outbound)
	}

	// Kept on B, confirmed: A, restarted, asks and removes its copy.
	imported = make(chan struct{})
	a.m.Migrate("mover", "operator", "gw-a", cutAfterImport(t, b, true, imported))
	<-imported
	a.shutdown()
	if !running(b) {
		t.Fatal("B does not run the chute it confirmed")
	}
	a = newGatewayWith(t, dirA, reopen)
	eventually(t, 15*time.Second, "A removes its copy", func() bool { return gone(a) })
	if !running(b) || readData(b, "mover", "payload") != payload {
		t.Errorf("B's chute, after A's restart: running %v", running(b))
	}
}

// TestHandoverAckEndsGrace: a chute that says it is ready ends its
// handover grace at once (30 s here); an ack with no migration waiting
// is refused.
func TestHandoverAckEndsGrace(t *testing.T) {
	a, b := twoGateways(t, "-b4")
	a.install(pkg(t, "name: ready\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nstop_grace: 30s\n", nil))
	if err := a.m.AckHandover("ready"); !errors.Is(err, ErrNoHandover) || !errors.Is(err, ErrConflict) {
		t.Errorf("an ack with no migration: %v", err)
	}
	told := filepath.Join(a.m.paths.policy("ready"), handoverFile)
	go func() {
		for range 600 {
			if _, err := os.Stat(told); err == nil {
				a.m.AckHandover("ready")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	c := a.wait(a.m.Migrate("ready", "operator", "gw-a", inProcess(t, b, func(r io.Reader) io.Reader { return r })))
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the move took %s: the grace did not end at the ack", took)
	}
	if c.State != ChangeDone {
		t.Fatalf("the move: %s (steps %v)", c.Error, c.Steps)
	}
	var said bool
	for _, st := range c.Steps {
		said = said || strings.HasPrefix(st.Message, "ready said it is ready after")
	}
	if !said {
		t.Errorf("the steps do not say the chute was ready: %v", c.Steps)
	}
}

// TestMigrateUnansweredTakenAsNotLanded: a restarted source whose target
// does not answer whether it kept the chute runs it again once
// ResolveFor has passed, not before.
func TestMigrateUnansweredTakenAsNotLanded(t *testing.T) {
	dirA := t.TempDir()
	var asked atomic.Int32
	cfg := func(c *Config) {
		c.ResolveFor = 2 * time.Second
		c.Reopen = func(json.RawMessage) (Destination, error) {
			return Destination{URL: "gw-b", Landed: func(context.Context, string, string) (bool, error) {
				asked.Add(1)
				return false, errors.New("connection refused")
			}}, nil
		}
	}
	_, b := twoGateways(t, "-b5")
	a := newGatewayWith(t, dirA, cfg)
	t.Cleanup(func() { a.removeAll() })
	a.install(pkg(t, "name: mover\nversion: 1.0.0\ncommand: [/bin/sh, /mover.sh]\nstop_grace: 200ms\nresources: {disk: 8Mi}\n", map[string]string{"mover.sh": moverScript}))
	eventually(t, 10*time.Second, "the payload", func() bool { return readData(a, "mover", "d/note") == "kept" })
	imported := make(chan struct{})
	a.m.Migrate("mover", "operator", "gw-a", cutAfterImport(t, b, false, imported))
	<-imported
	a.shutdown()
	start := time.Now()
	a = newGatewayWith(t, dirA, cfg)
	eventually(t, 15*time.Second, "A runs it again", func() bool {
		in, err := a.m.Get("mover")
		return err == nil && in.State == Running
	})
	if took := time.Since(start); took < 2*time.Second || asked.Load() < 2 {
		t.Errorf("A ran it again after %s, having asked %d times", took, asked.Load())
	}
}
