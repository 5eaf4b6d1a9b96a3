package main

// The runtime suite (issue "Chute runtime and lifecycle"): how fast a chute
// starts, through the runtime itself and through the daemon's API, against
// runc and LXC starting the same busybox rootfs; what the daemon and its
// chutes' monitor cost in memory; how big the binary is.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/pid1"
	"paradrop/examples"
	"paradrop/netconf"
)

// benchHostID is the host uid and gid the benchmark's own chutes map to:
// far above the daemon's slots (1<<20 + slot<<16), clear of its chutes.
const benchHostID = 0x7000_0000

// benchCgroup is the cgroup of the runtime's own starts; the daemon's
// chutes live under daemonCgroup.
const benchCgroup = "/paradrop-bench"

// oursName is the headline contender: the runtime with the shipped binary,
// started under the daemon's monitor, with no network namespace from the
// daemon (so from the monitor's warm init), as LXC's `net.type = empty`;
// coldName is the same with a shim exec'ed for the start.
const (
	oursName  = "paradrop Launcher.Start (as the daemon: under its monitor), daemon binary"
	coldName  = "paradrop sandbox.Start (cold: a shim exec'ed), daemon binary"
	burstName = "- burst: 10 Launcher.Start at once (median of the 10)"
	// joinedName is how the daemon itself starts every chute without
	// NET_RAW or NET_ADMIN: in the network namespace it made for the
	// chute (empty without --network), so cloned at the start.
	joinedName = "- joined netns (as the daemon does)"
)

// burstSize is how many chutes the burst row starts at once.
const burstSize = 10

// Counts of the daemon measurements besides -n: installs are slower and
// the RSS figure wants a fixed fleet.
const (
	installRuns  = 5
	fleetSize    = 10
	fleetSettled = 2 * time.Second // lets the daemon's start-up garbage go before RSS is read
	// apiSettle lets the daemon's start settle, untimed, before the next
	// contender runs.
	apiSettle = 300 * time.Millisecond
)

// sleepManifest is the chute the daemon runs: it sleeps, and stops at once
// (a sleeping pid 1 ignores SIGTERM, so any grace would only be waited out).
const sleepManifest = `name: %s
version: 1.0.0
command: ["/bin/sleep", "1000"]
stop_grace: 0s
`

// contender is one way of running /bin/true in the rootfs, timed from the
// call to its exit.
type contender struct {
	name string
	// run returns the time until the command was exec'ed (0 if the tool
	// does not tell) and until it had exited and the tool returned.
	run    func(ctx context.Context) (execed, total time.Duration, err error)
	execed sample
	total  sample
	cpu    sample       // paradrop's starts: CPU time per start (see cpuMark)
	spec   sandbox.Spec // paradrop's contenders': the chute they start
}

func runRuntime(ctx context.Context, o options) (string, error) {
	tmp, remove, err := chuteTempDir("paradrop-bench-")
	if err != nil {
		return "", err
	}
	defer remove()
	rootfs := filepath.Join(tmp, "rootfs")
	if err := busyboxRootfs(rootfs); err != nil {
		return "", err
	}
	bin, roles := filepath.Join(tmp, "paradrop"), filepath.Join(tmp, "roles")
	fmt.Println("building the daemon (as make build) and the roles-only binary...")
	if err := buildBinary(ctx, ".", bin); err != nil {
		return "", err
	}
	if err := buildBinary(ctx, "./bench/roles", roles); err != nil {
		return "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}

	var f daemonFigures
	d, stopDaemon, err := launchDaemon(ctx, tmp, bin, &f)
	if err != nil {
		return "", err
	}
	defer stopDaemon()
	api, err := newAPIStart(ctx, d)
	if err != nil {
		return "", err
	}
	starts, err := measureStarts(ctx, tmp, rootfs, bin, roles, self, api, o.n)
	if err != nil {
		return "", err
	}
	if err := d.change(ctx, "DELETE", "/chutes/"+apiChute, nil); err != nil {
		return "", err
	}
	if err := measureDaemon(ctx, d, &f); err != nil {
		return "", err
	}
	return report(starts, f, bin, roles, self)
}

// measureStarts times every contender o.n times, round robin, so that the
// load of a shared machine falls on all of them alike.
func measureStarts(ctx context.Context, tmp, rootfs, bin, roles, self string, api *contender, n int) ([]*contender, error) {
	existed := cgroupExists(benchCgroup)
	if _, err := cgroup.Open(benchCgroup, cgroup.Resources{}); err != nil {
		return nil, err
	}
	defer func() {
		if g, err := cgroup.Load(benchCgroup); err == nil && !existed {
			g.Delete()
		}
	}()
	mg, err := cgroup.Open(monitorCgroup, cgroup.Resources{})
	if err != nil {
		return nil, err
	}
	// After the launchers' Close (deferred below, so run before): their
	// monitors, with no chute left, exit.
	defer func() {
		for deadline := time.Now().Add(10 * time.Second); mg.Delete() != nil && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// The daemon starts chutes in a network namespace it made beforehand.
	netns := filepath.Join(tmp, "netns")
	if err := netconf.EnsureNetNS(netns); err != nil {
		return nil, err
	}
	defer netconf.DeleteNetNS(netns)
	// One launcher per binary, as the daemon keeps one for its own, each
	// with its monitor.
	launchers := map[string]*sandbox.Launcher{}
	defer func() {
		for _, l := range launchers {
			l.Close()
		}
	}()
	warm := func(exe string) *sandbox.Launcher {
		if launchers[exe] == nil {
			launchers[exe] = sandbox.NewLauncher(exe, filepath.Join(tmp, "monitor"), nil)
		}
		return launchers[exe]
	}
	seq := 0
	ours := func(label, exe string, l *sandbox.Launcher, userNS bool, cg, netns string) *contender {
		seq++
		dir := filepath.Join(tmp, "sandbox", fmt.Sprint(seq))
		spec := sandbox.Spec{
			Name: "bench", Rootfs: rootfs, Args: []string{"/bin/true"},
			UserNS: userNS, HostUID: benchHostID, HostGID: benchHostID,
			CgroupPath: cg, NetNS: netns,
			LogDir: filepath.Join(dir, "logs"), StateDir: filepath.Join(dir, "state"),
			Executable: exe,
		}
		c := &contender{name: label, spec: spec}
		c.run = func(ctx context.Context) (time.Duration, time.Duration, error) {
			return sandboxRun(ctx, spec, l, &c.cpu)
		}
		return c
	}
	runc, err := newRunc(ctx, tmp, rootfs)
	if err != nil {
		return nil, err
	}
	defer runc.cleanup()
	lxc, err := newLXC(tmp, rootfs)
	if err != nil {
		return nil, err
	}
	defer lxc.cleanup()

	var burst []sandbox.Spec
	for range burstSize {
		burst = append(burst, ours("", bin, nil, true, benchCgroup, "").spec)
	}
	pooled := &contender{name: burstName}
	pooled.run = func(ctx context.Context) (time.Duration, time.Duration, error) {
		return burstRun(ctx, burst, warm(bin), &pooled.cpu)
	}
	cs := []*contender{
		ours(oursName, bin, warm(bin), true, benchCgroup, ""),
		ours(coldName, bin, nil, true, benchCgroup, ""),
		pooled,
		ours("paradrop, bench binary as monitor and init", self, warm(self), true, benchCgroup, ""),
		ours(joinedName, bin, warm(bin), true, benchCgroup, netns),
		ours("- without user namespace (so no warm init: cloned at the start)", bin, warm(bin), false, benchCgroup, ""),
		ours("- without cgroup", bin, warm(bin), true, "", ""),
		ours("- roles-only binary (what-if)", roles, warm(roles), true, benchCgroup, ""),
		ours("- roles-only binary, cold (what-if)", roles, nil, true, benchCgroup, ""),
		{name: "runc run", run: runc.run},
		{name: "lxc-execute", run: lxc.run},
		{name: "exec /bin/true (host, no sandbox)", run: execTimer("/bin/true")},
		{name: "exec paradrop help (Go start-up)", run: execTimer(bin, "help")},
		{name: "exec paradrop __init, no plan (init's start-up)", run: execTimer(bin, sandbox.InitCommand)},
		{name: "exec roles-only binary (Go start-up)", run: execTimer(roles)},
		api,
	}
	fmt.Printf("timing %d contenders x %d runs, round robin...\n", len(cs), n)
	for i := range n {
		for _, c := range cs {
			execed, total, err := c.run(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", c.name, i+1, err)
			}
			if execed > 0 {
				c.execed = append(c.execed, execed)
			}
			c.total = append(c.total, total)
		}
	}
	return cs, nil
}

func cgroupExists(path string) bool {
	_, err := cgroup.Load(path)
	return err == nil
}

// sandboxRun starts /bin/true with the runtime itself, as the daemon's
// manager would (namespaces, pivot_root, seccomp, cgroup), and waits for
// it to exit: under l's monitor, or cold with a nil l. The monitor runs
// before the clock starts, as for any of a daemon's starts.
func sandboxRun(ctx context.Context, spec sandbox.Spec, l *sandbox.Launcher, cpu *sample) (time.Duration, time.Duration, error) {
	start := sandbox.Start
	chuteCg := ""
	if l != nil {
		if err := l.Warm(ctx); err != nil {
			return 0, 0, err
		}
		start, chuteCg = l.Start, spec.CgroupPath
	}
	mark, err := markCPU(monitorCgroup, chuteCg)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	c, err := start(ctx, spec)
	if err != nil {
		return 0, 0, err
	}
	execed := time.Since(t0)
	st, err := c.Wait(ctx)
	total := time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	if st.Code != 0 {
		return 0, 0, fmt.Errorf("/bin/true exited %d %s", st.Code, st.Signal)
	}
	// The shim removes its socket before it reports the exit, so the state
	// can go at once.
	if err := sandbox.Cleanup(spec.StateDir); err != nil {
		return 0, 0, err
	}
	used, err := mark.since(ctx)
	if err != nil {
		return 0, 0, err
	}
	*cpu = append(*cpu, used)
	return execed, total, nil
}

// burstRun starts every spec at once through l, as a daemon starting
// chutes at boot, and returns the medians of their times to the exec and
// to the exit, each from the common start. The monitor runs beforehand,
// as in sandboxRun. It adds the CPU time of one start, the burst's over
// its size, to cpu.
func burstRun(ctx context.Context, specs []sandbox.Spec, l *sandbox.Launcher, cpu *sample) (time.Duration, time.Duration, error) {
	if err := l.Warm(ctx); err != nil {
		return 0, 0, err
	}
	mark, err := markCPU(monitorCgroup, specs[0].CgroupPath)
	if err != nil {
		return 0, 0, err
	}
	execed, total := make(sample, len(specs)), make(sample, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, spec := range specs {
		wg.Go(func() {
			c, err := l.Start(ctx, spec)
			if err != nil {
				errs[i] = err
				return
			}
			execed[i] = time.Since(t0)
			st, err := c.Wait(ctx)
			total[i] = time.Since(t0)
			if err == nil && st.Code != 0 {
				err = fmt.Errorf("/bin/true exited %d %s", st.Code, st.Signal)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, spec := range specs {
		errs = append(errs, sandbox.Cleanup(spec.StateDir))
	}
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	used, err := mark.since(ctx)
	if err != nil {
		return 0, 0, err
	}
	*cpu = append(*cpu, used/time.Duration(len(specs)))
	return execed.median(), total.median(), nil
}

// execTimer times a plain fork+exec, the floor under every contender.
func execTimer(name string, args ...string) func(context.Context) (time.Duration, time.Duration, error) {
	return func(ctx context.Context) (time.Duration, time.Duration, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = nil // `paradrop help`, roles without a role and init without a plan fail
		}
		if err != nil {
			return 0, 0, fmt.Errorf("exec %s: %w", name, err)
		}
		return 0, d, nil
	}
}

// runcPeer runs the rootfs with runc's default spec: new pid, net, ipc,
// uts and mount namespaces, a cgroup, a read-only root; no user namespace
// or seccomp filter (runc spec adds none).
type runcPeer struct {
	root, bundle string
	seq          int
}

func newRunc(ctx context.Context, tmp, rootfs string) (*runcPeer, error) {
	p := &runcPeer{root: filepath.Join(tmp, "runc-state"), bundle: filepath.Join(tmp, "runc-bundle")}
	if err := os.MkdirAll(p.bundle, 0o755); err != nil {
		return nil, fmt.Errorf("runc bundle: %w", err)
	}
	if msg, err := exec.CommandContext(ctx, "runc", "spec", "--bundle", p.bundle).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("runc spec (install runc): %w: %s", err, msg)
	}
	cfgPath := filepath.Join(p.bundle, "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("runc bundle: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("runc config.json: %w", err)
	}
	proc, ok := cfg["process"].(map[string]any)
	if !ok {
		return nil, errors.New("runc config.json: no process")
	}
	proc["terminal"] = false
	proc["args"] = []string{"/bin/true"}
	cfg["root"] = map[string]any{"path": rootfs, "readonly": true}
	if data, err = json.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("runc config.json: %w", err)
	}
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return nil, fmt.Errorf("runc config.json: %w", err)
	}
	return p, nil
}

func (p *runcPeer) run(ctx context.Context) (time.Duration, time.Duration, error) {
	p.seq++
	id := fmt.Sprintf("paradrop-bench-%d-%d", os.Getpid(), p.seq)
	cmd := exec.CommandContext(ctx, "runc", "--root", p.root, "run", "--bundle", p.bundle, id)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("runc run: %w: %s", err, bytes.TrimSpace(out))
	}
	return 0, d, nil
}

// cleanup deletes any container a failed run left in runc's state.
func (p *runcPeer) cleanup() {
	out, err := exec.Command("runc", "--root", p.root, "list", "-q").Output()
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", p.root, "delete", "-f", id).Run()
	}
}

// lxcPeer runs the rootfs with lxc-execute and LXC's common config (cap
// drop, seccomp, device cgroup, proc/sys mounts), its usual container.
type lxcPeer struct {
	path, config string
	seq          int
}

func newLXC(tmp, rootfs string) (*lxcPeer, error) {
	p := &lxcPeer{path: filepath.Join(tmp, "lxc"), config: filepath.Join(tmp, "lxc.conf")}
	if _, err := exec.LookPath("lxc-execute"); err != nil {
		return nil, fmt.Errorf("install lxc: %w", err)
	}
	if err := os.MkdirAll(p.path, 0o755); err != nil {
		return nil, fmt.Errorf("lxc path: %w", err)
	}
	conf := fmt.Sprintf("lxc.uts.name = bench\nlxc.rootfs.path = dir:%s\nlxc.net.0.type = empty\n", rootfs)
	if _, err := os.Stat("/usr/share/lxc/config/common.conf"); err == nil {
		conf += "lxc.include = /usr/share/lxc/config/common.conf\n"
	}
	if err := os.WriteFile(p.config, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("lxc config: %w", err)
	}
	return p, nil
}

func (p *lxcPeer) name() string { return fmt.Sprintf("paradrop-bench-%d-%d", os.Getpid(), p.seq) }

func (p *lxcPeer) run(ctx context.Context) (time.Duration, time.Duration, error) {
	p.seq++
	cmd := exec.CommandContext(ctx, "lxc-execute", "-n", p.name(), "-P", p.path, "-f", p.config, "--", "/bin/true")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("lxc-execute: %w: %s", err, bytes.TrimSpace(out))
	}
	return 0, d, nil
}

// cleanup stops any container a failed run left running.
func (p *lxcPeer) cleanup() {
	out, err := exec.Command("lxc-ls", "-P", p.path, "-1").Output()
	if err != nil {
		return
	}
	for _, n := range strings.Fields(string(out)) {
		exec.Command("lxc-stop", "-k", "-n", n, "-P", p.path).Run()
	}
}

// daemonFigures are what the daemon measurements found.
type daemonFigures struct {
	install           sample
	rssIdle, rssFleet int64 // daemon VmRSS with no chute and with the fleet running
	// the processes serving the chutes (its monitor, or shims), RssAnon
	// added up, with no chute and with the fleet running
	serversIdle, serversFleet int64
}

// apiChute is the chute whose starts are timed through the API.
const apiChute = "bench-start"

// apiName is the contender that starts a chute through the daemon.
const apiName = "daemon API: POST start?wait=1 (sleep)"

// launchDaemon starts the daemon and reads its idle RSS. The returned stop
// removes every chute, since chutes outlive the daemon, then stops it.
func launchDaemon(ctx context.Context, tmp, bin string, f *daemonFigures) (*daemon, func(), error) {
	d, err := startDaemon(ctx, bin, filepath.Join(tmp, "data"))
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		rmCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.removeAll(rmCtx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
		if err := d.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}
	time.Sleep(fleetSettled)
	if f.rssIdle, err = vmRSS(d.pid()); err != nil {
		stop()
		return nil, nil, err
	}
	if f.serversIdle, _, err = serversRSS(d.pid(), nil); err != nil {
		stop()
		return nil, nil, err
	}
	return d, stop, nil
}

func sleepPackage(name string) ([]byte, error) {
	b, err := examples.Package(fmt.Sprintf(sleepManifest, name), nil)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", name, err)
	}
	return b, nil
}

// newAPIStart installs the sleep chute once and returns the contender that
// stops it (untimed) and times its start: exec'ed is when its sleep shows
// in its cgroup, done when the start change has ended.
func newAPIStart(ctx context.Context, d *daemon) (*contender, error) {
	pkg, err := sleepPackage(apiChute)
	if err != nil {
		return nil, err
	}
	if err := d.change(ctx, "POST", "/chutes", bytes.NewReader(pkg)); err != nil {
		return nil, err
	}
	return &contender{name: apiName, run: func(ctx context.Context) (time.Duration, time.Duration, error) {
		if err := d.change(ctx, "POST", "/chutes/"+apiChute+"/stop", nil); err != nil {
			return 0, 0, err
		}
		pollCtx, stopPoll := context.WithTimeout(ctx, 30*time.Second)
		defer stopPoll()
		seen := make(chan time.Time, 1)
		go func() { seen <- waitForComm(pollCtx, daemonCgroup+"/"+apiChute, "sleep") }()
		t0 := time.Now()
		if err := d.change(ctx, "POST", "/chutes/"+apiChute+"/start", nil); err != nil {
			return 0, 0, err
		}
		done := time.Since(t0)
		at := <-seen
		if at.IsZero() {
			return 0, 0, fmt.Errorf("chute %s started but no sleep process showed in its cgroup", apiChute)
		}
		time.Sleep(apiSettle)
		return at.Sub(t0), done, nil
	}}, nil
}

// measureDaemon times installs through the API, then reads the daemon's
// RSS and its monitor's with a fleet of chutes running.
func measureDaemon(ctx context.Context, d *daemon, f *daemonFigures) error {
	fmt.Printf("timing %d installs through the API...\n", installRuns)
	pkg, err := sleepPackage("bench-install")
	if err != nil {
		return err
	}
	for range installRuns {
		t0 := time.Now()
		if err := d.change(ctx, "POST", "/chutes", bytes.NewReader(pkg)); err != nil {
			return err
		}
		f.install = append(f.install, time.Since(t0))
		if err := d.change(ctx, "DELETE", "/chutes/bench-install", nil); err != nil {
			return err
		}
	}

	fmt.Printf("installing a fleet of %d sleeping chutes for RSS...\n", fleetSize)
	for i := range fleetSize {
		p, err := sleepPackage(fmt.Sprintf("bench-fleet-%d", i))
		if err != nil {
			return err
		}
		if err := d.change(ctx, "POST", "/chutes", bytes.NewReader(p)); err != nil {
			return err
		}
	}
	time.Sleep(fleetSettled)
	if f.rssFleet, err = vmRSS(d.pid()); err != nil {
		return err
	}
	var pids []int
	for i := range fleetSize {
		in, err := d.chute(ctx, fmt.Sprintf("bench-fleet-%d", i))
		if err != nil {
			return err
		}
		pids = append(pids, in.Pid)
	}
	f.serversFleet, _, err = serversRSS(d.pid(), pids)
	return err
}

// waitForComm polls a cgroup until a process named comm is in it, and
// returns when it first saw it (zero if ctx ended first). It asks for a
// pause of 200µs between polls, but Go's timer wakes after about 1 ms and
// a poll costs 160µs of CPU: a poll every 1.2 ms, so exec'ed reads up to
// that late (0.6 ms on average), which a finer poll would pay in CPU
// taken from the start it times.
func waitForComm(ctx context.Context, cg, comm string) time.Time {
	for {
		if g, err := cgroup.Load(cg); err == nil {
			pids, _ := g.Procs()
			for _, pid := range pids {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				if err == nil && strings.TrimSpace(string(b)) == comm {
					return time.Now()
				}
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// chuteServers returns the processes that serve the chutes whose pid 1s
// are chutePids (each one's parent: the daemon's monitor, or a shim of its
// own), the daemon's monitors that serve none yet, and the warm inits
// those monitors keep for the next start, each once.
func chuteServers(daemonPid int, chutePids []int) ([]int, error) {
	out, err := chuteServersOnly(daemonPid, chutePids)
	if err != nil {
		return nil, err
	}
	for _, p := range out {
		warm, err := childrenWith(p, "\x00"+pid1.WarmCommand+"\x00")
		if err != nil {
			return nil, err
		}
		out = append(out, warm...)
	}
	return out, nil
}

// childrenWith returns the children of pid whose command line contains
// word.
func childrenWith(pid int, word string) ([]int, error) {
	// Each thread lists the children it forked, and Go forks from any.
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(b)) {
			cmdline, err := os.ReadFile("/proc/" + f + "/cmdline")
			if err != nil || !bytes.Contains(cmdline, []byte(word)) {
				continue
			}
			var child int
			if _, err := fmt.Sscan(f, &child); err != nil {
				return nil, err
			}
			out = append(out, child)
		}
	}
	return out, nil
}

func chuteServersOnly(daemonPid int, chutePids []int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	add := func(pid int) {
		if !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	for _, p := range chutePids {
		if p == 0 {
			return nil, errors.New("no pid: not running")
		}
		v, err := procStatus(p, "PPid")
		if err != nil {
			return nil, err
		}
		var ppid int
		if _, err := fmt.Sscan(v, &ppid); err != nil {
			return nil, fmt.Errorf("PPid of %d: %w", p, err)
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(cmdline, []byte("\x00"+sandbox.MonitorCommand+"\x00")) && !bytes.Contains(cmdline, []byte("\x00"+sandbox.ShimCommand+"\x00")) {
			return nil, fmt.Errorf("parent %d of chute pid %d is neither a monitor nor a shim: %q", ppid, p, cmdline)
		}
		add(ppid)
	}
	monitors, err := childrenWith(daemonPid, "\x00"+sandbox.MonitorCommand+"\x00")
	if err != nil {
		return nil, err
	}
	for _, pid := range monitors {
		add(pid)
	}
	return out, nil
}

// serversRSS is the memory the processes serving the chutes (see
// chuteServers) alone cost, added up: their anonymous RSS. The rest of
// their VmRSS is the binary's pages, shared with the daemon.
func serversRSS(daemonPid int, chutePids []int) (int64, int, error) {
	pids, err := chuteServers(daemonPid, chutePids)
	if err != nil {
		return 0, 0, err
	}
	var sum int64
	for _, p := range pids {
		n, err := statusBytes(p, "RssAnon")
		if err != nil {
			return 0, 0, err
		}
		sum += n
	}
	return sum, len(pids), nil
}

// report prints the tables and returns the README section.
func report(cs []*contender, d daemonFigures, bin, roles, self string) (string, error) {
	find := func(name string) *contender {
		for _, c := range cs {
			if c.name == name {
				return c
			}
		}
		panic("no contender " + name)
	}
	ours, cold, runc, lxc := find(oursName), find(coldName), find("runc run"), find("lxc-execute")
	joined := find(joinedName)
	ratios := func(s sample) string {
		return fmt.Sprintf("%.2f× runc, %.2f× lxc", ratio(s, runc.total), ratio(s, lxc.total))
	}

	api := find(apiName)
	startT := newTable("start in the busybox rootfs", "n", "exec'ed median", "done median", "done p90", "done vs peers", "CPU per start median")
	for _, c := range cs {
		execed, cpu := "-", "-"
		if len(c.execed) > 0 {
			execed = ms(c.execed.median())
		}
		if len(c.cpu) > 0 {
			cpu = ms(c.cpu.median())
		}
		startT.add(c.name, fmt.Sprint(len(c.total)), execed, ms(c.total.median()), ms(c.total.p90()), ratios(c.total), cpu)
	}
	apiT := newTable("through the daemon's API", "n", "median", "p90")
	apiT.add("POST chutes?wait=1: install (upload, unpack, /data volume, start)", fmt.Sprint(len(d.install)), ms(d.install.median()), ms(d.install.p90()))

	binSize, err := fileSize(bin)
	if err != nil {
		return "", err
	}
	selfSize, err := fileSize(self)
	if err != nil {
		return "", err
	}
	rolesSize, err := fileSize(roles)
	if err != nil {
		return "", err
	}
	memT := newTable("memory and size", "value")
	memT.add("daemon VmRSS, idle, no chute", mib(d.rssIdle))
	memT.add(fmt.Sprintf("daemon VmRSS, idle, %d chutes running", fleetSize), mib(d.rssFleet))
	memT.add("the daemon's monitor and its warm init, private memory (RssAnon), no chute", mib(d.serversIdle))
	memT.add(fmt.Sprintf("the monitor's growth per chute, %d chutes", fleetSize), mib((d.serversFleet-d.serversIdle)/fleetSize))
	memT.add(fmt.Sprintf("daemon VmRSS + monitor RssAnon, %d chutes", fleetSize), mib(d.rssFleet+d.serversFleet))
	memT.add("binary, make build (CGO_ENABLED=0 -trimpath -s -w)", mib(binSize))
	memT.add("roles-only binary (what-if, same flags)", mib(rolesSize))
	memT.add("bench binary (go run, not stripped)", mib(selfSize))

	for _, t := range []*table{startT, apiT, memT} {
		t.print(os.Stdout)
	}
	burst := find(burstName)
	// Two CPUs run a burst's starts two at a time at best: its middle
	// start cannot end before this many starts' CPU time.
	rounds := (burstSize/2 + runtime.NumCPU() - 1) / runtime.NumCPU()
	floor := time.Duration(rounds) * burst.cpu.median()
	goal := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Start of `/bin/true` exit to exit: paradrop's runtime %s under the daemon's monitor, a chute without a network namespace from the daemon (its warm init; %s with a shim exec'ed), runc %s, LXC %s: "+
		"**%.2f× runc, %.2f× LXC** (goals ≤ 0.5× runc: %s, ≤ 0.8× LXC: %s; cold %.2f× runc). "+
		"The daemon's own starts join the network namespace it made for the chute (all but chutes with NET_RAW or NET_ADMIN, "+
		"which own theirs), so are cloned at the start: %s, **%.2f× runc, %.2f× LXC** (≤ 0.5× runc: %s, ≤ 0.8× LXC: %s). "+
		"%d chutes started at once under the monitor: median %s (goal ≤ the single start's %s: %s). "+
		"A start of a burst costs %s of CPU: on %d CPUs the burst's middle start cannot end before %d× that, %s. "+
		"Through the API, a stopped chute's command runs %s after the call "+
		"and the start change ends after %s (%.2f× runc's whole run).\n\n",
		ms(ours.total.median()), ms(cold.total.median()), ms(runc.total.median()), ms(lxc.total.median()),
		ratio(ours.total, runc.total), ratio(ours.total, lxc.total),
		goal(ratio(ours.total, runc.total) <= 0.5), goal(ratio(ours.total, lxc.total) <= 0.8), ratio(cold.total, runc.total),
		ms(joined.total.median()), ratio(joined.total, runc.total), ratio(joined.total, lxc.total),
		goal(ratio(joined.total, runc.total) <= 0.5), goal(ratio(joined.total, lxc.total) <= 0.8),
		burstSize, ms(burst.total.median()), ms(ours.total.median()), goal(burst.total.median() <= ours.total.median()),
		ms(burst.cpu.median()), runtime.NumCPU(), rounds, ms(floor),
		ms(api.execed.median()), ms(api.total.median()), ratio(api.total, runc.total))
	b.WriteString(startT.markdown() + "\n" + apiT.markdown() + "\n" + memT.markdown() + "\n")
	b.WriteString(runtimeNotes)
	return b.String(), nil
}

const runtimeNotes = `How it is measured:

- One busybox rootfs (Debian's busybox-static and its applet links) serves
  every contender. All contenders run round robin, so a loaded moment hits
  them alike.
- paradrop: ` + "`sandbox.Launcher.Start`" + ` as the daemon's manager calls it (new
  mount, pid, uts, ipc, net, user and cgroup namespaces, pivot_root,
  capability drop, seccomp, a v1/v2 cgroup), until ` + "`Wait`" + ` returns the
  exit; the exec'ed column is when ` + "`Start`" + ` returned. The launcher hands
  the chute to its monitor, the one process of the binary that is every
  chute's shim (see chute/sandbox), running before the clock starts as it
  does in a daemon, with a warm init ready (an init cloned in its
  namespaces and started beforehand, which the start assigns the chute;
  the monitor makes the next one after the start, and that CPU time
  counts in the CPU per start). The cold row is ` + "`sandbox.Start`" + `, which execs a shim
  per start (what a launcher that cannot run a monitor does). The burst
  row starts 10 chutes at once through the same launcher and times each
  from the common start; its n counts bursts, each giving the median of
  its 10. CPU per start: this process's user and system time and that of
  its reaped children (cold shims, and through them init and /bin/true),
  plus the CPU usage of the monitors' cgroup (` + monitorCgroup + `, where the bench
  moves its launchers' monitors) and, for a start under a monitor, of the
  chutes' cgroup (the monitor reaps those chutes), from the start until
  every cold shim has been reaped, less the bench's own waiting for them
  (a scan of /proc, whose cost grows with the host's processes); a
  burst's over its 10 starts. Kernel threads' work after a start is not
  in it: with a new network namespace, its cleanup (about 0.7 ms a start)
  and RCU's expedited grace periods (0.25 ms). The
  headline row uses the shipped binary as shim and init and a new network
  namespace, as runc does. The "-" rows change one thing each: the
  daemon's way of joining a namespace made beforehand, no user namespace,
  no cgroup, and a what-if binary (bench/roles) that links only
  chute/sandbox, to show what the package initialisation of the daemon's
  other dependencies costs (a cold shim's, now: init runs before it).
- runc: ` + "`runc run`" + ` of ` + "`runc spec`" + `'s default bundle, args ` + "`/bin/true`" + `,
  read-only root. It has no user namespace and no seccomp filter: it does
  less than paradrop.
- LXC: ` + "`lxc-execute`" + ` with LXC's common.conf (cap drop, seccomp, devices
  cgroup), no network.
- The exec rows are the floor: a bare fork+exec, the start-up of the Go
  binaries that paradrop re-executes for a cold start (shim, then init;
  under a monitor, only init),
  and init's own start-up: the daemon binary as a chute's init, which
  fails at once here for want of a plan, after the 23 packages that
  initialise before its role runs (chute/sandbox/pid1).
- The daemon API row: the daemon (` + "`paradrop serve --network=false`" + `, built as
  ` + "`make build`" + `; the chute network is the network suite's) on loopback,
  its one sleep chute stopped (untimed) then started, in the
  same round robin; exec'ed is when a process named sleep first shows in
  the chute's cgroup (polled about every 1.2 ms during the call, so up to
  that late), done is when the
  start change has ended. The daemon's start also opens the cgroup, checks
  the /data volume and network namespace and records states in its store.
  After each API start the bench pauses 300 ms, untimed, for the daemon's
  start to settle.
- "done" is the exit of /bin/true and the return of the tool (or ` + "`Wait`" + `).
  Install includes upload, unpack, the /data volume and the start. RSS is
  /proc/PID/status VmRSS, read 2s after the last change.
`

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
