package chute

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
)

// A resource policy change is made in two phases, as in the ParaDrop
// paper: the chute is first asked to live within the new limits (the
// policy is published to it and it gets a grace period), then the gateway
// enforces them through cgroups and the network. The change's steps record
// which phase took effect.

// Policy is the operator's live resource policy for a chute: each field
// that is set overrides the manifest's resources, across chute restarts,
// updates and daemon restarts.
type Policy struct {
	CPUWeight *int             `json:"cpu_weight,omitempty"`
	CPUMax    *float64         `json:"cpu_max,omitempty"` // cores
	CPUs      *string          `json:"cpus,omitempty"`    // a CPU list; "" is every CPU
	Memory    *manifest.Bytes  `json:"memory,omitempty"`
	Pids      *int             `json:"pids,omitempty"`
	Bandwidth *BandwidthPolicy `json:"bandwidth,omitempty"`
}

// BandwidthPolicy overrides the manifest's bandwidth limits (bits per
// second, 0 unlimited).
type BandwidthPolicy struct {
	Egress  *manifest.Rate `json:"egress,omitempty"`
	Ingress *manifest.Rate `json:"ingress,omitempty"`
}

// ResourceRequest is a change of a chute's policy: the fields set in Policy
// change, the others stay as they are.
type ResourceRequest struct {
	Policy
	// Grace is how long the chute has to comply on its own; unset, the
	// manifest's policy.grace.
	Grace *manifest.Duration `json:"grace,omitempty"`
	// Force lowers memory below what the chute uses and cannot give back,
	// by restarting it under the new limit.
	Force bool `json:"force,omitempty"`
}

// How the grace period is watched: often enough to force promptly, over a
// window long enough to average a bursty CPU user.
const (
	graceTick   = 100 * time.Millisecond
	graceWindow = 500 * time.Millisecond
)

// merge returns p with the fields set in q replacing its own.
func (p *Policy) merge(q Policy) *Policy {
	out := Policy{}
	if p != nil {
		out = *p
	}
	if q.CPUWeight != nil {
		out.CPUWeight = q.CPUWeight
	}
	if q.CPUMax != nil {
		out.CPUMax = q.CPUMax
	}
	if q.CPUs != nil {
		out.CPUs = q.CPUs
	}
	if q.Memory != nil {
		out.Memory = q.Memory
	}
	if q.Pids != nil {
		out.Pids = q.Pids
	}
	if b := q.Bandwidth; b != nil {
		nb := BandwidthPolicy{}
		if out.Bandwidth != nil {
			nb = *out.Bandwidth
		}
		if b.Egress != nil {
			nb.Egress = b.Egress
		}
		if b.Ingress != nil {
			nb.Ingress = b.Ingress
		}
		out.Bandwidth = &nb
	}
	return &out
}

// apply returns r with p's overrides; a nil p changes nothing.
func (p *Policy) apply(r manifest.Resources) manifest.Resources {
	if p == nil {
		return r
	}
	if p.CPUWeight != nil {
		r.CPUWeight = *p.CPUWeight
	}
	if p.CPUMax != nil {
		r.CPUMax = *p.CPUMax
	}
	if p.CPUs != nil {
		r.CPUs = *p.CPUs
	}
	if p.Memory != nil {
		r.Memory = *p.Memory
	}
	if p.Pids != nil {
		r.Pids = *p.Pids
	}
	if b := p.Bandwidth; b != nil {
		if b.Egress != nil {
			r.Bandwidth.Egress = *b.Egress
		}
		if b.Ingress != nil {
			r.Bandwidth.Ingress = *b.Ingress
		}
	}
	return r
}

// Validate checks what needs no chute: something to change and no
// negative values. SetResources checks the rest against the manifest.
func (q ResourceRequest) Validate() error {
	p := q.Policy
	var bad []string
	if p.CPUWeight != nil && *p.CPUWeight < 0 {
		bad = append(bad, "cpu_weight")
	}
	if p.CPUMax != nil && *p.CPUMax < 0 {
		bad = append(bad, "cpu_max")
	}
	if p.Pids != nil && *p.Pids < 0 {
		bad = append(bad, "pids")
	}
	if q.Grace != nil && *q.Grace < 0 {
		bad = append(bad, "grace")
	}
	switch {
	case len(bad) > 0:
		return fmt.Errorf("%w: negative %s", ErrInvalid, strings.Join(bad, ", "))
	case q.empty():
		return fmt.Errorf("%w: nothing to change", ErrInvalid)
	}
	return nil
}

func (q ResourceRequest) empty() bool {
	p := q.Policy
	return p.CPUWeight == nil && p.CPUMax == nil && p.CPUs == nil && p.Memory == nil && p.Pids == nil && p.Bandwidth == nil
}

// limits are the cgroup limits the chute runs under: its manifest's
// resources with its persisted policy over them.
func (m *Manager) limits(name string, man *manifest.Manifest) cgroup.Resources {
	m.mu.Lock()
	var pol *Policy
	if e, ok := m.chutes[name]; ok {
		pol = e.rec.Policy
	}
	m.mu.Unlock()
	return resourcesOf(&manifest.Manifest{Resources: pol.apply(man.Resources)})
}

// Resources returns the resources the chute is held to now: its manifest's
// with the operator's policy over them.
func (m *Manager) Resources(name string) (manifest.Resources, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.chutes[name]
	if !ok {
		return manifest.Resources{}, fmt.Errorf("chute %q: %w", name, ErrNotFound)
	}
	return e.rec.Policy.apply(e.rec.Manifest.Resources), nil
}

// SetResources validates a policy change and queues it (action
// "resources"). Bad values are an error here, wrapping ErrInvalid.
func (m *Manager) SetResources(name string, req ResourceRequest, actor Actor) (Change, error) {
	e, err := m.acting(name, actor)
	if err != nil {
		return Change{}, fmt.Errorf("resources: %w", err)
	}
	if err := req.Validate(); err != nil {
		return Change{}, fmt.Errorf("resources: %w", err)
	}
	m.mu.Lock()
	man := *e.rec.Manifest
	man.Resources = e.rec.Policy.merge(req.Policy).apply(man.Resources)
	owner := e.rec.Owner
	m.mu.Unlock()
	if req.Grace != nil {
		man.Policy.Grace = *req.Grace
	}
	// The manifest's own rules bound a policy too (cpu_max at most 64
	// cores, memory at least 4Mi, ...).
	if err := man.Validate(); err != nil {
		return Change{}, fmt.Errorf("resources: %w: %v", ErrInvalid, err)
	}
	if err := resourcesOf(&man).Validate(); err != nil {
		return Change{}, fmt.Errorf("resources: %w: %v", ErrInvalid, err)
	}
	res := man.Resources
	cl, err := m.admit(claim{name: name, memory: memoryOf(res), owner: owner, cpu: res.CPUMax, egress: uint64(res.Bandwidth.Egress)})
	if err != nil {
		return Change{}, fmt.Errorf("resources: %w", err)
	}
	ch, err := m.queueOp(name, actor, "resources", func(ctx context.Context, p *progress) error {
		defer m.release(cl)
		if err := m.changeResources(ctx, p, name, req); err != nil {
			return fmt.Errorf("resources %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		m.release(cl)
	}
	return ch, err
}

// policyDoc is what the chute reads in /paradrop/policy.json and receives
// on its hook.
type policyDoc struct {
	CPUWeight int                `json:"cpu_weight"`
	CPUMax    float64            `json:"cpu_max"` // cores
	CPUs      string             `json:"cpus"`    // "" is every CPU
	Memory    int64              `json:"memory"`  // bytes
	Pids      int                `json:"pids"`
	Bandwidth manifest.Bandwidth `json:"bandwidth"` // bits per second, 0 unlimited
	Grace     manifest.Duration  `json:"grace"`
	Deadline  time.Time          `json:"deadline"` // when the gateway enforces it
}

func newPolicyDoc(r manifest.Resources, grace time.Duration, deadline time.Time) policyDoc {
	return policyDoc{
		CPUWeight: r.CPUWeight, CPUMax: r.CPUMax, CPUs: r.CPUs, Memory: int64(r.Memory), Pids: r.Pids,
		Bandwidth: r.Bandwidth, Grace: manifest.Duration(grace), Deadline: deadline.UTC(),
	}
}

// publishPolicy replaces policy.json in the chute's policy directory (its
// /paradrop) at once: written aside and renamed, so the chute never reads a
// half-written file.
func (m *Manager) publishPolicy(name string, doc policyDoc) error {
	dir := m.paths.policy(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("publish policy: %w", err)
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("publish policy: %w", err)
	}
	// Readable by the chute's unprivileged uid.
	if err := replaceFile(dir, "policy.json", append(raw, '\n'), 0o644, -1); err != nil {
		return fmt.Errorf("publish policy: %w", err)
	}
	return nil
}

// postHook POSTs the policy to the chute's hook from inside its network
// namespace and describes the outcome for the change's steps.
func (m *Manager) postHook(ctx context.Context, name string, ep *manifest.HTTPEndpoint, doc policyDoc, timeout time.Duration) string {
	where := fmt.Sprintf("hook :%d%s", ep.Port, ep.Path)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, _ := json.Marshal(doc)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(ep.Port)+ep.Path, bytes.NewReader(raw))
	if err != nil {
		return fmt.Sprintf("ask: %s: %v", where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	tr := m.netnsTransport(name)
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Sprintf("ask: POST to %s failed: %v", where, err)
	}
	resp.Body.Close()
	return fmt.Sprintf("ask: POSTed policy to %s (%d)", where, resp.StatusCode)
}

// changeResources runs a policy change on the chute's queue.
func (m *Manager) changeResources(ctx context.Context, p *progress, name string, req ResourceRequest) error {
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	man, old, running := e.rec.Manifest, e.rec.Policy, e.sb != nil
	m.mu.Unlock()
	next := old.merge(req.Policy)
	want := next.apply(man.Resources)
	grace := time.Duration(man.Policy.Grace)
	if req.Grace != nil {
		grace = time.Duration(*req.Grace)
	}

	start := time.Now()
	deadline := start.Add(grace)
	doc := newPolicyDoc(want, grace, deadline)
	if err := m.publishPolicy(name, doc); err != nil {
		return err
	}
	if !running {
		if err := m.save(name, func(r *record) { r.Policy = next }); err != nil {
			return err
		}
		p.step("chute not running: published policy.json; the limits apply when it starts")
		return nil
	}
	err = m.enforce(ctx, p, name, man, next, want, doc, req, start)
	if err != nil {
		// The chute was told of a policy that did not take effect.
		back := newPolicyDoc(old.apply(man.Resources), 0, time.Now())
		if perr := m.publishPolicy(name, back); perr != nil {
			err = errors.Join(err, perr)
		}
		return err
	}
	return nil
}

// enforce asks the running chute to comply, watches it through the grace
// period and then applies the limits, forcing them if it did not comply.
// On error the old limits are in place.
func (m *Manager) enforce(ctx context.Context, p *progress, name string, man *manifest.Manifest, next *Policy, want manifest.Resources, doc policyDoc, req ResourceRequest, start time.Time) error {
	grace, deadline := time.Duration(doc.Grace), doc.Deadline
	g, err := cgroup.Load(m.paths.cgroup(name))
	if err != nil {
		return err
	}
	hookDone := make(chan struct{})
	if h := man.Policy.Hook; h != nil && h.HTTP != nil {
		p.step("ask: published policy.json, POSTing it to the hook (grace %s)", grace)
		// The hook runs alongside the grace period and never delays the force.
		go func() {
			defer close(hookDone)
			p.step("%s", m.postHook(ctx, name, h.HTTP, doc, min(max(grace, time.Second), 10*time.Second)))
		}()
	} else {
		p.step("ask: published policy.json (grace %s; no hook declared)", grace)
		close(hookDone)
	}
	defer func() { <-hookDone }() // its step belongs to this change

	limits := resourcesOf(&manifest.Manifest{Resources: want})
	ask := m.openAsk(name, want, doc)
	over, complied, acked, err := watchGrace(ctx, g, limits, start, deadline, ask.acked)
	m.closeAsk(name, ask)
	if err != nil {
		return err
	}
	if acked > 0 {
		p.step("chute acknowledged at T+%s", acked.Round(time.Millisecond))
	}
	switch {
	case over == "":
		p.step("chute complied within grace (after %s): no force needed", complied.Round(time.Millisecond))
	case acked > 0:
		p.step("acknowledged but %s, forcing", over)
	default:
		p.step("grace %s: %s, forcing", grace, over)
	}

	restart, err := makeRoom(ctx, p, g, limits, req.Force)
	if err != nil {
		return err
	}
	if restart {
		// launch applies the persisted policy, so save it first.
		if err := m.save(name, func(r *record) { r.Policy = next }); err != nil {
			return err
		}
		p.step("force: restarting the chute under the new limits")
		if err := m.stopChute(ctx, p, name); err != nil {
			return err
		}
		e, err := m.entry(name)
		if err != nil {
			return err
		}
		return m.startChute(ctx, p, name, e.rec.Dir, man)
	}
	if err := g.Set(limits); err != nil {
		// Set writes one controller after another: put back what it changed.
		if rerr := g.Set(m.limits(name, man)); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore old limits: %w", rerr))
		}
		return err
	}
	applied := time.Now()
	switch {
	case over != "" && acked > 0:
		p.step("force: cgroup %s applied at T+%s (%s after the ack)", describeLimits(limits),
			applied.Sub(start).Round(time.Millisecond), (applied.Sub(start) - acked).Round(time.Millisecond))
	case over != "":
		p.step("force: cgroup %s applied at T+%s (%s after the grace)", describeLimits(limits),
			applied.Sub(start).Round(time.Millisecond), applied.Sub(deadline).Round(time.Millisecond))
	default:
		p.step("backstop: cgroup %s applied", describeLimits(limits))
	}
	if req.Bandwidth != nil {
		if err := m.applyBandwidth(ctx, p, name, want.Bandwidth); err != nil {
			return err
		}
	}
	return m.save(name, func(r *record) { r.Policy = next })
}

// reading is one look at the chute's cgroup during the grace period.
type reading struct {
	t  time.Time
	st cgroup.Stats
}

// watchGrace samples the chute every graceTick until it keeps within want
// over a whole graceWindow (complied, after how long), the chute
// acknowledges the request on ack (acked, after how long; it is judged at
// once, its CPU over a window from the ack) or the deadline comes.
// over is what it still exceeds then, "" if nothing.
func watchGrace(ctx context.Context, g *cgroup.Group, want cgroup.Resources, start, deadline time.Time, ack <-chan time.Time) (over string, complied, acked time.Duration, err error) {
	tick := time.NewTicker(graceTick)
	defer tick.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	var rs []reading
	look := func() error {
		st, err := g.Stats()
		if err != nil {
			return err
		}
		now := time.Now()
		rs = append(rs, reading{now, st})
		// Keep the newest reading at least graceWindow old as the base.
		for len(rs) > 2 && now.Sub(rs[1].t) >= graceWindow {
			rs = rs[1:]
		}
		return nil
	}
	if err := look(); err != nil {
		return "", 0, 0, err
	}
	for {
		select {
		case <-ctx.Done():
			return "", 0, 0, ctx.Err()
		case at := <-ack:
			acked = at.Sub(start)
			if err := look(); err != nil {
				return "", 0, 0, err
			}
			if want.CPUMax > 0 {
				// CPU is an average, and what the chute used before it
				// complied does not count: measure it from the ack, over
				// a window (or what is left of the grace).
				rs = rs[len(rs)-1:]
				wait := max(min(graceWindow, time.Until(deadline)), graceTick)
				select {
				case <-ctx.Done():
					return "", 0, 0, ctx.Err()
				case <-time.After(wait):
				}
				if err := look(); err != nil {
					return "", 0, 0, err
				}
			}
			if ex := excess(rs, want); ex != "" {
				return ex, 0, acked, nil
			}
			return "", time.Since(start), acked, nil
		case <-end.C:
			if err := look(); err != nil {
				return "", 0, 0, err
			}
			if rs[len(rs)-1].t.Sub(rs[0].t) < graceTick {
				return "no time to judge", 0, 0, nil
			}
			if ex := excess(rs, want); ex != "" {
				return ex, 0, 0, nil
			}
			return "", time.Since(start), 0, nil
		case <-tick.C:
			if err := look(); err != nil {
				return "", 0, 0, err
			}
			if rs[len(rs)-1].t.Sub(rs[0].t) >= graceWindow-graceTick/2 && excess(rs, want) == "" {
				return "", time.Since(start), 0, nil
			}
		}
	}
}

// excess says which of want's limits the readings exceed: CPU averaged
// from the first reading to the last, memory and processes at the last.
func excess(rs []reading, want cgroup.Resources) string {
	last := rs[len(rs)-1]
	var why []string
	if want.CPUMax > 0 {
		first := rs[0]
		if secs := last.t.Sub(first.t).Seconds(); secs > 0 && last.st.CPUUsageNs >= first.st.CPUUsageNs {
			cores := float64(last.st.CPUUsageNs-first.st.CPUUsageNs) / 1e9 / secs
			if cores > want.CPUMax {
				why = append(why, fmt.Sprintf("cpu %.2f cores > %g", cores, want.CPUMax))
			}
		}
	}
	if want.Memory > 0 && last.st.MemoryUsage > uint64(want.Memory) {
		why = append(why, fmt.Sprintf("memory %s > %s", manifest.Bytes(last.st.MemoryUsage), manifest.Bytes(want.Memory)))
	}
	if want.Pids > 0 && last.st.Pids > uint64(want.Pids) {
		why = append(why, fmt.Sprintf("pids %d > %d", last.st.Pids, want.Pids))
	}
	return strings.Join(why, ", ")
}

// makeRoom brings the chute's memory under a lower limit before it is set:
// the kernel would refuse the limit (v1) or OOM-kill to meet it (v2). If
// the memory cannot be reclaimed, the change fails with the old limits in
// place, or with force, asks for a restart under the new limits.
func makeRoom(ctx context.Context, p *progress, g *cgroup.Group, want cgroup.Resources, force bool) (restart bool, err error) {
	st, err := g.Stats()
	if err != nil {
		return false, err
	}
	if want.Memory == 0 || st.MemoryUsage <= uint64(want.Memory) {
		return false, nil
	}
	err = g.Reclaim(ctx, want.Memory)
	switch {
	case err == nil:
		p.step("reclaimed memory from %s to under %s", manifest.Bytes(st.MemoryUsage), manifest.Bytes(want.Memory))
		return false, nil
	case !errors.Is(err, cgroup.ErrCannotReclaim):
		return false, err
	case !force:
		return false, fmt.Errorf("memory: the chute uses %s and the kernel cannot reclaim it down to %s (%v); the old limits stay (force restarts the chute under the new limit)",
			manifest.Bytes(st.MemoryUsage), manifest.Bytes(want.Memory), err)
	}
	p.step("memory: cannot reclaim %s down to %s", manifest.Bytes(st.MemoryUsage), manifest.Bytes(want.Memory))
	return true, nil
}

// applyBandwidth hands the bandwidth limits to the chute network.
func (m *Manager) applyBandwidth(ctx context.Context, p *progress, name string, bw manifest.Bandwidth) error {
	if m.cfg.Network == nil {
		p.step("bandwidth egress=%s ingress=%s saved; networking is disabled", bw.Egress, bw.Ingress)
		return nil
	}
	if err := m.setBandwidth(ctx, name, bw); err != nil {
		return fmt.Errorf("bandwidth: %w", err)
	}
	p.step("bandwidth egress=%s ingress=%s applied", bw.Egress, bw.Ingress)
	return nil
}

func describeLimits(r cgroup.Resources) string {
	cpu := "unlimited"
	if r.CPUMax > 0 {
		cpu = strconv.FormatFloat(r.CPUMax, 'g', -1, 64)
	}
	mem := "unlimited"
	if r.Memory > 0 {
		mem = manifest.Bytes(r.Memory).String()
	}
	cpus := cmp.Or(r.CPUs, "all")
	return fmt.Sprintf("cpu_max=%s cpu_weight=%d cpus=%s memory=%s pids=%d", cpu, r.CPUWeight, cpus, mem, r.Pids)
}
