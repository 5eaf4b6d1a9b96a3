package chute

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"paradrop/chute/manifest"
)

// pendingPolicy waits for the change on name to be in its grace period.
func pendingPolicy(t *testing.T, g *gateway, name string) PolicyRequest {
	t.Helper()
	var req PolicyRequest
	eventually(t, 10*time.Second, "the policy request to wait for "+name, func() bool {
		var ok bool
		req, ok = g.m.PendingPolicy(name)
		return ok
	})
	return req
}

// TestPolicyAckEndsGrace: a chute's ack ends a long grace period at once.
// A chute that acks but still exceeds the limit is forced right away; one
// that keeps within it gets the backstop; a stale, repeated or unexpected
// ack is refused as a conflict.
func TestPolicyAckEndsGrace(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	// Ten processes: a use the test can judge on a loaded machine.
	g.install(pkg(t, "name: busy\nversion: 1.0.0\ncommand: [/bin/sh, -c, \"for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1000 & done; wait\"]\n", nil))
	const grace = 30 * time.Second

	if _, err := g.m.AckPolicy("busy", time.Time{}); !errors.Is(err, ErrNoPolicyRequest) || !errors.Is(err, ErrConflict) {
		t.Errorf("ack with no request waiting: %v, want ErrNoPolicyRequest", err)
	}

	// A liar: it acks and keeps its processes.
	ch, err := g.m.SetResources("busy", ResourceRequest{Policy: Policy{Pids: ptr(5)}, Grace: ptr(manifest.Duration(grace))}, "")
	if err != nil {
		t.Fatal(err)
	}
	req := pendingPolicy(t, g, "busy")
	if req.Resources.Pids != 5 || time.Duration(req.Grace) != grace || time.Until(req.Deadline) < grace-5*time.Second {
		t.Errorf("pending request %+v", req)
	}
	if _, err := g.m.AckPolicy("busy", req.Deadline.Add(-time.Second)); !errors.Is(err, ErrNoPolicyRequest) {
		t.Errorf("ack of another deadline: %v, want ErrNoPolicyRequest", err)
	}
	acked := time.Now()
	if _, err := g.m.AckPolicy("busy", req.Deadline); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if _, err := g.m.AckPolicy("busy", req.Deadline); !errors.Is(err, ErrNoPolicyRequest) {
		t.Errorf("a second ack: %v, want ErrNoPolicyRequest", err)
	}
	c := g.mustDo(ch, nil)
	took := time.Since(acked)
	all := steps(c)
	t.Logf("the change ended %s after the ack; steps:\n%s", took, all)
	if took > 3*time.Second {
		t.Errorf("the change ended %s after the ack, want at once (grace %s)", took, grace)
	}
	if !regexp.MustCompile(`chute acknowledged at T\+\S+`).MatchString(all) ||
		!strings.Contains(all, "acknowledged but pids 11 > 5, forcing") || !regexp.MustCompile(`force: cgroup .*pids=5 applied at T\+\S+ \(\S+ after the ack\)`).MatchString(all) {
		t.Errorf("want the ack and the force recorded:\n%s", all)
	}
	if r, err := g.m.Resources("busy"); err != nil || r.Pids != 5 {
		t.Errorf("resources after the change: %+v, %v", r, err)
	}
	if _, ok := g.m.PendingPolicy("busy"); ok {
		t.Error("a request still waits after the change ended")
	}
	if _, err := g.m.AckPolicy("busy", req.Deadline); !errors.Is(err, ErrNoPolicyRequest) {
		t.Errorf("ack after the change: %v, want ErrNoPolicyRequest", err)
	}

	// An honest chute within its new memory limit: the ack is recorded
	// and the limits applied as a backstop.
	g.install(pkg(t, "name: idle\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n", nil))
	ch, err = g.m.SetResources("idle", ResourceRequest{Policy: Policy{Memory: ptr(manifest.Bytes(32 << 20))}, Grace: ptr(manifest.Duration(grace))}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.m.AckPolicy("idle", pendingPolicy(t, g, "idle").Deadline); err != nil {
		t.Fatalf("ack: %v", err)
	}
	all = steps(g.mustDo(ch, nil))
	t.Logf("steps:\n%s", all)
	if !strings.Contains(all, "chute acknowledged at T+") || !strings.Contains(all, "complied within grace") ||
		strings.Contains(all, "forcing") || !strings.Contains(all, "backstop: cgroup cpu_max=1 cpu_weight=100 cpus=all memory=32Mi") {
		t.Errorf("want the ack and the backstop recorded:\n%s", all)
	}
}
