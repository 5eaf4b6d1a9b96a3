package chute

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
	"paradrop/chute/sandbox"
	"paradrop/chute/volume"
	"paradrop/netconf"
)

// Host ids of chute user namespaces: slot N maps chute ids 0..65535 to
// hostIDBase+N*65536.., away from the ids of the host's own users.
const (
	hostIDBase = 1 << 20
	idsPerSlot = 1 << 16
)

func hostID(slot int) uint32 { return uint32(hostIDBase + slot*idsPerSlot) }

// Restart backoff: doubled after each quick failure, reset once the chute
// has stayed up for backoffReset.
const (
	backoffMin   = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	backoffReset = 10 * time.Second
)

func resourcesOf(m *manifest.Manifest) cgroup.Resources {
	return cgroup.Resources{
		CPUWeight: uint64(m.Resources.CPUWeight),
		CPUMax:    m.Resources.CPUMax,
		Memory:    int64(m.Resources.Memory),
		Pids:      int64(m.Resources.Pids),
		CPUs:      m.Resources.CPUs,
	}
}

func envOf(m *manifest.Manifest) []string {
	env := make([]string, 0, len(m.Env))
	for k, v := range m.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// startChute starts version dir of the chute with manifest man and begins
// supervising it.
func (m *Manager) startChute(ctx context.Context, p *progress, name, dir string, man *manifest.Manifest) error {
	return m.startChuteAs(ctx, p, name, dir, man, nil)
}

// startDesired makes running the chute's desired state and starts it: the
// one write of its record before the launch carries both (each write is a
// commit, two fdatasyncs, on the start's path).
func (m *Manager) startDesired(ctx context.Context, p *progress, name string) error {
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	return m.startChuteAs(ctx, p, name, e.rec.Dir, e.rec.Manifest, func(r *record) { r.Desired, r.Restarts = Running, 0 })
}

// startChuteAs is startChute with desire applied to the chute's record in
// the write that marks it starting, or alone if it is running already.
func (m *Manager) startChuteAs(ctx context.Context, p *progress, name, dir string, man *manifest.Manifest, desire func(*record)) error {
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	if e.sb != nil {
		if desire != nil {
			m.save(name, desire)
		}
		return nil
	}
	m.save(name, func(r *record) {
		if desire != nil {
			desire(r)
		}
		r.State, r.Error = Starting, ""
	})
	sb, err := m.launch(ctx, p, name, e.rec.Slot, dir, man)
	if err != nil {
		m.save(name, func(r *record) { r.State = Failed; r.Error = err.Error() })
		return err
	}
	m.mu.Lock()
	e.sb = sb
	m.mu.Unlock()
	m.save(name, func(r *record) { r.State = Running })
	m.supervise(name, sb, man)
	p.step("chute %s running, pid %d", name, sb.Pid())
	return nil
}

// launch prepares the chute's cgroup, /data volume and network namespace,
// and starts its sandbox.
func (m *Manager) launch(ctx context.Context, p *progress, name string, slot int, dir string, man *manifest.Manifest) (*sandbox.Chute, error) {
	id := hostID(slot)
	if err := m.prepare(ctx, name, id, man); err != nil {
		return nil, fmt.Errorf("start chute %q: %w", name, err)
	}
	// The network is in place before the chute's first instruction runs.
	if err := m.attach(ctx, name, man); err != nil {
		return nil, fmt.Errorf("start chute %q: %w", name, err)
	}
	nodes, _, err := devicesOf(man)
	if err != nil {
		return nil, fmt.Errorf("start chute %q: %w", name, err)
	}
	// A fresh identity for each run: the last run's token is refused.
	token, err := m.mintToken(name, id+uint32(man.User))
	if err == nil {
		err = m.openSocket(name, id+uint32(man.User))
	}
	var apiEnv []string
	if err == nil {
		apiEnv, err = m.networkAPIEnv(name)
	}
	var etc []sandbox.EtcFile
	if err == nil {
		etc, err = m.etcFiles(name, man)
	}
	if from := m.migratedFrom(name); from != "" {
		apiEnv = append(apiEnv, migratedFromEnv+"="+from)
	}
	if err != nil {
		m.revokeToken(name)
		return nil, fmt.Errorf("start chute %q: %w", name, err)
	}
	p.step("starting %s", man.Command[0])
	sb, err := m.launcher.Start(ctx, sandbox.Spec{
		Name:       name,
		Rootfs:     m.paths.rootfs(name, dir),
		DataDir:    m.paths.data(name),
		PolicyDir:  m.paths.policy(name),
		Args:       man.Command,
		Env:        append(append(envOf(man), tokenEnv+"="+token), apiEnv...),
		UID:        uint32(man.User),
		GID:        uint32(man.User),
		UserNS:     true,
		HostUID:    id,
		HostGID:    id,
		NetNS:      m.paths.netns(name),
		CgroupPath: m.paths.cgroup(name),
		Devices:    nodes,
		Etc:        etc,
		Caps:       man.Capabilities,
		Health:     healthOf(man),
		TmpSize:    int64(man.Resources.Tmp),
		LogDir:     m.paths.logs(name),
		StateDir:   m.paths.run(name),
		Executable: m.cfg.Executable,
	})
	if err != nil {
		m.revokeToken(name)
	}
	return sb, err
}

// prepare makes what the sandbox needs: the cgroup with the limits in
// force, the /data volume, the network namespace, the policy and log dirs.
func (m *Manager) prepare(ctx context.Context, name string, id uint32, man *manifest.Manifest) error {
	_, rules, err := devicesOf(man)
	if err != nil {
		return err
	}
	// The group may be the last run's (its counters, OOM kills included,
	// carry on): the device rules are replaced by this version's.
	g, err := cgroup.Open(m.paths.cgroup(name), m.limits(name, man))
	if err != nil {
		return err
	}
	if err := g.LimitDevices(rules); err != nil {
		if len(man.Devices) > 0 {
			return err
		}
		// The rule is a second wall for a chute without devices: its /dev
		// holds only the nodes bound in, and its user namespace cannot
		// mknod. A host that cannot set it (no devices controller, a
		// kernel without cgroup BPF) should not stop every chute.
		m.logf("chute %s: %v", name, err)
	}
	if err := volume.Ensure(ctx, m.paths.dataImage(name), m.paths.data(name), int64(man.Resources.Disk), int(id), int(id)); err != nil {
		return err
	}
	if err := netconf.EnsureNetNS(m.paths.netns(name)); err != nil {
		return err
	}
	for _, d := range []string{m.paths.policy(name), m.paths.logs(name)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// stopChute stops the chute's processes, all of them, and records why.
func (m *Manager) stopChute(ctx context.Context, p *progress, name string) error {
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	sb, cancel, grace := e.sb, e.stopSup, time.Duration(e.rec.Manifest.StopGrace)
	e.sb, e.stopSup = nil, nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if sb != nil {
		m.save(name, func(r *record) { r.State = Stopping })
		p.step("stopping chute %s (grace %s)", name, grace)
		st, err := sb.Stop(ctx, grace)
		if err != nil {
			return fmt.Errorf("stop chute %q: %w", name, err)
		}
		m.save(name, func(r *record) { r.LastExit = describeExit(st) })
	}
	// Whatever escaped pid 1's death (nothing should) goes with the group.
	if g, err := cgroup.Load(m.paths.cgroup(name)); err == nil {
		if err := g.Kill(); err != nil {
			return fmt.Errorf("stop chute %q: %w", name, err)
		}
	}
	if err := sandbox.Cleanup(m.paths.run(name)); err != nil {
		m.logf("clean up chute %q: %v", name, err)
	}
	m.revokeToken(name)
	return m.save(name, func(r *record) { r.State = Stopped })
}

func describeExit(st sandbox.ExitStatus) string {
	if st.Signal != "" {
		return "killed by signal: " + st.Signal
	}
	return fmt.Sprintf("exit code %d", st.Code)
}

// supervise waits for the chute to exit and runs its health check; both
// lead back to the chute's queue so they never race a change.
func (m *Manager) supervise(name string, sb *sandbox.Chute, man *manifest.Manifest) {
	ctx, cancel := context.WithCancel(m.ctx)
	m.mu.Lock()
	e, ok := m.chutes[name]
	if ok {
		e.stopSup = cancel
	}
	m.mu.Unlock()
	if !ok {
		cancel()
		return
	}
	if man.Health != nil {
		go m.watchHealth(ctx, name, sb, man)
	}
	go func() {
		defer cancel()
		st, err := sb.Wait(ctx)
		if ctx.Err() != nil {
			return
		}
		m.enqueue(name, job{run: func(ctx context.Context, p *progress) error {
			return m.exited(ctx, p, name, sb, st, err)
		}})
	}()
}

// exited applies the restart policy after the chute's pid 1 ended on its own.
func (m *Manager) exited(ctx context.Context, p *progress, name string, sb *sandbox.Chute, st sandbox.ExitStatus, waitErr error) error {
	e, err := m.entry(name)
	if err != nil {
		return nil
	}
	m.mu.Lock()
	if e.sb != sb {
		m.mu.Unlock()
		return nil // a change replaced this instance meanwhile
	}
	e.sb, e.stopSup = nil, nil
	man := e.rec.Manifest
	ranFor := time.Since(sb.StartedAt())
	m.mu.Unlock()

	why := describeExit(st)
	if waitErr != nil {
		why = waitErr.Error()
	}
	if g, err := cgroup.Load(m.paths.cgroup(name)); err == nil {
		g.Kill()
	}
	sandbox.Cleanup(m.paths.run(name))
	m.revokeToken(name)
	m.logf("chute %s exited: %s", name, why)

	restart := e.rec.Desired == Running && (man.Restart.Policy == manifest.RestartAlways ||
		man.Restart.Policy == manifest.RestartOnFailure && (st.Code != 0 || waitErr != nil))
	if !restart {
		state := Stopped
		if st.Code != 0 || waitErr != nil {
			state = Failed
		}
		return m.save(name, func(r *record) { r.State, r.LastExit = state, why })
	}
	if man.Restart.MaxRetries > 0 && e.rec.Restarts >= man.Restart.MaxRetries {
		return m.save(name, func(r *record) {
			r.State, r.LastExit = Failed, why
			r.Error = fmt.Sprintf("gave up after %d restarts", r.Restarts)
		})
	}
	m.mu.Lock()
	if ranFor > backoffReset || e.backoff == 0 {
		e.backoff = backoffMin
	} else {
		e.backoff = min(2*e.backoff, backoffMax)
	}
	delay := e.backoff
	m.mu.Unlock()
	m.save(name, func(r *record) { r.State, r.LastExit = Starting, why; r.Restarts++ })
	m.restarts.Add(1)
	m.logf("chute %s: restarting in %s", name, delay)
	time.AfterFunc(delay, func() {
		m.enqueue(name, job{run: func(ctx context.Context, p *progress) error {
			e, err := m.entry(name)
			if err != nil || e.rec.Desired != Running || e.sb != nil {
				return nil
			}
			return m.startChute(ctx, p, name, e.rec.Dir, e.rec.Manifest)
		}})
	})
	return nil
}

// recover re-adopts the chute's running sandbox after a daemon restart, or
// brings it back to its desired state after a reboot or a crash mid-change.
func (m *Manager) recover(ctx context.Context, p *progress, name string) error {
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	if e.rec.Unconfirmed {
		return m.recoverUnconfirmed(ctx, p, name)
	}
	if o := e.rec.Outbound; o != nil {
		if gone, err := m.recoverOutbound(ctx, p, name, *o); gone || err != nil {
			return err
		}
	}
	if e.rec.Pending != "" {
		// A crash during an update: the old version is the committed one.
		p.step("chute %s: rolling back an update interrupted by a daemon restart", name)
		m.killLeft(ctx, name)
		os.RemoveAll(m.paths.version(name, e.rec.Pending))
		m.save(name, func(r *record) { r.Pending = "" })
	} else if sb, err := sandbox.Attach(ctx, m.paths.run(name)); err == nil {
		m.mu.Lock()
		e.sb = sb
		m.mu.Unlock()
		m.save(name, func(r *record) { r.State = Running })
		m.supervise(name, sb, e.rec.Manifest)
		p.step("chute %s: re-adopted running pid %d", name, sb.Pid())
		err := m.adoptToken(name)
		if err == nil {
			err = m.openSocket(name, hostID(e.rec.Slot)+uint32(e.rec.Manifest.User))
		}
		if err != nil {
			m.logf("chute %s: %v", name, err)
		}
		// The network's flows live in this daemon's memory: give them back.
		if err := m.attach(ctx, name, e.rec.Manifest); err != nil {
			m.save(name, func(r *record) { r.Error = err.Error() })
			return fmt.Errorf("re-adopt chute %q: %w", name, err)
		}
		return nil
	} else if !errors.Is(err, sandbox.ErrNoShim) && !errors.Is(err, sandbox.ErrNotRunning) {
		m.logf("chute %s: re-adopt: %v", name, err)
	}
	sandbox.Cleanup(m.paths.run(name))
	if g, err := cgroup.Load(m.paths.cgroup(name)); err == nil {
		g.Kill()
	}
	if e.rec.Desired != Running {
		return m.save(name, func(r *record) { r.State = Stopped })
	}
	p.step("chute %s: starting (desired state running)", name)
	return m.startChute(ctx, p, name, e.rec.Dir, e.rec.Manifest)
}

// killLeft stops the sandbox of name a previous daemon left running.
func (m *Manager) killLeft(ctx context.Context, name string) {
	e, err := m.entry(name)
	if err != nil {
		return
	}
	if sb, err := sandbox.Attach(ctx, m.paths.run(name)); err == nil {
		sb.Stop(ctx, time.Duration(e.rec.Manifest.StopGrace))
	}
	if g, err := cgroup.Load(m.paths.cgroup(name)); err == nil {
		g.Kill()
	}
	sandbox.Cleanup(m.paths.run(name))
}

// removeLeftovers deletes what no record owns: directories, cgroups and
// network namespaces of chutes that are gone. (Staged uploads are removed
// by NewManager.)
func (m *Manager) removeLeftovers() {
	m.mu.Lock()
	known := map[string]record{}
	for n, e := range m.chutes {
		known[n] = e.rec
	}
	m.mu.Unlock()
	if ents, err := os.ReadDir(m.paths.chutes()); err == nil {
		for _, d := range ents {
			r, ok := known[d.Name()]
			if !ok {
				m.logf("removing leftover chute directory %s", d.Name())
				m.purge(d.Name(), false)
				continue
			}
			vers, _ := os.ReadDir(m.paths.versions(r.Name))
			for _, v := range vers {
				if v.Name() != r.Dir && v.Name() != r.Pending {
					os.RemoveAll(m.paths.version(r.Name, v.Name()))
				}
			}
		}
	}
	if names, err := cgroup.List(m.paths.cgroupParent); err == nil {
		for _, n := range names {
			if _, ok := known[n]; ok {
				continue
			}
			if g, err := cgroup.Load(m.paths.cgroup(n)); err == nil {
				m.logf("removing leftover cgroup of %s", n)
				g.Kill()
				g.Delete()
			}
		}
	}
	if ents, err := os.ReadDir(m.paths.netnsDir()); err == nil {
		for _, d := range ents {
			if _, ok := known[d.Name()]; !ok {
				netconf.DeleteNetNS(m.paths.netns(d.Name()))
			}
		}
	}
}

// purge removes every trace of a chute on the host but its record; with
// keepData its /data image is set aside for a later install of that name.
func (m *Manager) purge(name string, keepData bool) error {
	var errs []error
	if sb, err := sandbox.Attach(m.ctx, m.paths.run(name)); err == nil {
		sb.Signal(syscall.SIGKILL)
	}
	if g, err := cgroup.Load(m.paths.cgroup(name)); err == nil {
		errs = append(errs, g.Kill(), g.Delete())
	}
	errs = append(errs, sandbox.Cleanup(m.paths.run(name)))
	m.revokeToken(name)
	if m.cfg.Network != nil {
		errs = append(errs, m.cfg.Network.Detach(m.ctx, name))
	}
	errs = append(errs, netconf.DeleteNetNS(m.paths.netns(name)))
	errs = append(errs, volume.Unmount(m.paths.data(name)))
	if keepData {
		m.mu.Lock()
		e, ok := m.chutes[name]
		var slot int
		var owner Owner
		if ok {
			slot, owner = e.rec.Slot, e.rec.Owner
		}
		m.mu.Unlock()
		if !ok {
			return fmt.Errorf("remove chute %q: keep data: %w", name, ErrNotFound)
		}
		if err := m.keep(name, slot, owner); err != nil {
			return fmt.Errorf("remove chute %q: keep data: %w", name, err)
		}
	}
	errs = append(errs, os.RemoveAll(m.paths.chute(name)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove chute %q: %w", name, err)
	}
	return nil
}
