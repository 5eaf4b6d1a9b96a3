package main

// The router suite: the paper's ALIX 2d2 (256 MB, a slow single core)
// emulated by one cgroup parent holding the daemon, its Open vSwitch and
// every chute, limited to 256 MiB of memory and 0.25 of a CPU.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"paradrop/cgroup"
	"paradrop/chute"
	"paradrop/examples"
	"paradrop/netconf"
	"paradrop/sdn/ovs"
)

func init() {
	suites["router"] = suite{
		summary: "a 256 MB, 0.25-CPU box (the paper's ALIX 2d2) in one cgroup: chutes that fit, per-chute overhead, daemon RSS and idle CPU, boot after a power cut",
		run:     runRouter,
	}
}

// The box and the goals.
const (
	boxMemory = 256 << 20
	boxCPU    = 0.25

	goalOverhead = 1 << 20  // per chute, beyond its own processes
	goalDaemon   = 16 << 20 // daemon VmRSS with 30 chutes
	goalIdleCPU  = 0.5      // % of a core, daemon with 30 chutes
	goalBoot30   = 10 * time.Second

	routerBoots   = 3               // power cuts per chute count
	routerSettle  = 5 * time.Second // idle before a memory reading
	routerIdleFor = 30 * time.Second
	// routerMaxChutes bounds the capacity search, so a box that fits
	// more ends in finite time; the report then says "at least".
	routerMaxChutes = 120
	// answerWithin is how long a chute just installed may take to answer.
	answerWithin = 15 * time.Second
)

// gatewayTags are the Makefile's CROSS_TAGS: the box runs the daemon a
// gateway runs, built as make cross and make package build it.
var gatewayTags = []string{"nethttpomithttp2", "router"}

// boxedCommand is the bench binary's role that joins a cgroup and then
// runs a program in it, so that everything the program allocates from its
// first page is charged to the box: `__boxed CGROUP PROGRAM ARGS...`, or
// `__boxed CGROUP ovs DIR` to start Open vSwitch's daemons there.
const boxedCommand = "__boxed"

func boxedMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: __boxed CGROUP PROGRAM ARGS...")
		return 2
	}
	g, err := cgroup.Load(args[0])
	if err == nil {
		err = g.Add(os.Getpid())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "boxed:", err)
		return 1
	}
	if args[1] == "ovs" && len(args) == 3 {
		// Detached, its daemons stay in the group when this exits.
		if _, err := ovs.Start(context.Background(), args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "boxed:", err)
			return 1
		}
		return 0
	}
	err = syscall.Exec(args[1], args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "boxed: exec:", err)
	return 1
}

// httpdManifest is the chute the box is filled with.
const httpdManifest = `name: %s
version: 1.0.0
command: ["/usr/sbin/httpd", "-f", "-p", "80", "-h", "/www"]
resources: {memory: 16Mi}
stop_grace: 0s
`

// routerBox is the emulated gateway: its cgroups, its network namespace
// (the bridge, OVS's taps, nftables and the API's loopback live there,
// off the host's), OVS's directory and the daemon.
type routerBox struct {
	dir, bin, exe string
	box           string // cgroup parent of everything
	ns            string
	ovsDir        string
	d             *daemon
	pkgs          map[string][]byte
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	memoryOnly    bool // stop after the memory readings
}

func runRouter(ctx context.Context, o options) (string, error) {
	if err := ovs.Installed(); err != nil {
		return "", err
	}
	tmp, remove, err := chuteTempDir("paradrop-bench-router-")
	if err != nil {
		return "", err
	}
	defer remove()
	// The chutes' mapped users must reach their rootfs below it.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return "", err
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	b := &routerBox{dir: tmp, bin: filepath.Join(tmp, "paradrop"), exe: exe,
		box: fmt.Sprintf("/paradrop-benchbox-%d", os.Getpid()), ovsDir: filepath.Join(tmp, "ovs"),
		pkgs: map[string][]byte{}, memoryOnly: o.routerMemory}
	if o.daemon != "" {
		if b.bin, err = filepath.Abs(o.daemon); err != nil {
			return "", err
		}
	} else {
		fmt.Println("building the daemon as make cross builds a gateway's...")
		if err := buildBinary(ctx, ".", b.bin, gatewayTags...); err != nil {
			return "", err
		}
	}
	defer b.close()
	if err := b.open(); err != nil {
		return "", err
	}
	if o.idleOnly > 0 {
		err := b.measureIdle(ctx, o.idleOnly)
		if err != nil && b.d != nil {
			fmt.Fprintln(os.Stderr, "router: daemon log:", b.d.logTail())
		}
		return "", err
	}
	r := &routerResult{}
	if err := b.measure(ctx, r); err != nil {
		if b.d != nil {
			fmt.Fprintln(os.Stderr, "router: daemon log:", b.d.logTail())
		}
		return "", err
	}
	if b.memoryOnly {
		r.memoryTable().print(os.Stdout)
		r.mapsTable().print(os.Stdout)
		fmt.Printf("daemon idle CPU with 30 chutes: %.2f%% of a core over %s\n", r.idle.daemon, r.idle.window.Round(time.Second))
		return "", nil
	}
	return r.report(), nil
}

// open makes the box's cgroups and network namespace.
func (b *routerBox) open() error {
	if _, err := cgroup.Open(b.box, cgroup.Resources{Memory: boxMemory, CPUMax: boxCPU}); err != nil {
		return err
	}
	for _, sub := range []string{"/daemon", "/ovs"} {
		if _, err := cgroup.Open(b.box+sub, cgroup.Resources{}); err != nil {
			return err
		}
	}
	b.ns = filepath.Join(b.dir, "ns", "gw")
	if err := os.MkdirAll(filepath.Dir(b.ns), 0o755); err != nil {
		return err
	}
	if err := netconf.EnsureNetNS(b.ns); err != nil {
		return err
	}
	b.dial = func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = netconf.InNetNS(b.ns, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return nil
}

// close kills everything in the box, then removes its cgroups and
// namespace (OVS's taps, the bridge and the chutes' veths go with it);
// the caller's remove unmounts and deletes the directory.
func (b *routerBox) close() {
	if err := b.powerCut(); err != nil {
		fmt.Fprintln(os.Stderr, "router: cleanup:", err)
	}
	if err := removeCgroupTree(b.box); err != nil {
		fmt.Fprintln(os.Stderr, "router: cleanup:", err)
	}
	unmountUnder(b.dir)
	if b.ns != "" {
		netconf.DeleteNetNS(b.ns)
	}
}

// powerCut is kill -9 of every process in the box at once.
func (b *routerBox) powerCut() error {
	g, err := cgroup.Load(b.box)
	if errors.Is(err, cgroup.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := g.Kill(); err != nil {
		return err
	}
	if b.d != nil {
		<-b.d.exited
		b.d = nil
	}
	return nil
}

// boot starts OVS then the daemon in the box, as a router's init does
// after power comes back; it returns when the daemon's API answers, with
// the time the daemon was started.
func (b *routerBox) boot(ctx context.Context) (time.Time, error) {
	cmd := exec.CommandContext(ctx, b.exe, boxedCommand, b.box+"/ovs", "ovs", b.ovsDir)
	if err := netconf.InNetNS(b.ns, func() error {
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("start OVS in the box: %w: %s", err, out)
		}
		return nil
	}); err != nil {
		return time.Time{}, err
	}
	port, ctlPort := freePortIn(b), freePortIn(b)
	if port == 0 || ctlPort == 0 {
		return time.Time{}, errors.New("no free port in the box's namespace")
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	data := filepath.Join(b.dir, "data")
	logf, err := os.OpenFile(filepath.Join(b.dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return time.Time{}, err
	}
	defer logf.Close()
	serve := exec.Command(b.exe, boxedCommand, b.box+"/daemon", b.bin, "serve", "--data", data,
		"--listen", listen, "--cgroup-parent", b.box+"/chutes", "--bridge", fmt.Sprintf("pdrtr%d", os.Getpid()%100000),
		"--controller", fmt.Sprintf("127.0.0.1:%d", ctlPort), "--ovsdb", "unix:"+filepath.Join(b.ovsDir, "db.sock"),
		"--subnet", "198.51.100.0/24")
	serve.Stdout, serve.Stderr = logf, logf
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := time.Now()
	if err := netconf.InNetNS(b.ns, serve.Start); err != nil {
		return time.Time{}, fmt.Errorf("start daemon: %w", err)
	}
	d := &daemon{cmd: serve, base: "http://" + listen + "/api/v1", logPath: filepath.Join(b.dir, "daemon.log"),
		exited: make(chan struct{}),
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DialContext: b.dial}}}
	go func() { serve.Wait(); close(d.exited) }()
	b.d = d
	for {
		if tok, err := os.ReadFile(filepath.Join(data, "operator.token")); err == nil && len(strings.TrimSpace(string(tok))) > 0 {
			d.token = strings.TrimSpace(string(tok))
			if _, err := d.call(ctx, "GET", "/health", nil, nil); err == nil {
				return started, nil
			}
		}
		select {
		case <-d.exited:
			return time.Time{}, fmt.Errorf("daemon exited at start-up: %s", d.logTail())
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(started) > time.Minute {
			return time.Time{}, fmt.Errorf("daemon not answering after a minute: %s", d.logTail())
		}
	}
}

func freePortIn(b *routerBox) int {
	var port int
	netconf.InNetNS(b.ns, func() error {
		p, err := freePort()
		port = p
		return err
	})
	return port
}

func chuteName(i int) string { return fmt.Sprintf("web%03d", i) }

// install installs chute i and waits until it answers.
func (b *routerBox) install(ctx context.Context, i int) error {
	name := chuteName(i)
	pkg, ok := b.pkgs[name]
	if !ok {
		var err error
		if pkg, err = examples.Package(fmt.Sprintf(httpdManifest, name), map[string]string{"www/index.html": name + "\n"}); err != nil {
			return err
		}
		b.pkgs[name] = pkg
	}
	if err := b.d.change(ctx, "POST", "/chutes", strings.NewReader(string(pkg))); err != nil {
		return err
	}
	in, err := b.d.chute(ctx, name)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	if _, err := b.answered(actx, []chute.Info{in}); err != nil {
		return fmt.Errorf("%s installed but %w", name, err)
	}
	return nil
}

// chutes lists the installed chutes.
func (b *routerBox) chutes(ctx context.Context) ([]chute.Info, error) {
	var list struct{ Chutes []chute.Info }
	if _, err := b.d.call(ctx, "GET", "/chutes", nil, &list); err != nil {
		return nil, err
	}
	return list.Chutes, nil
}

// answered polls every chute's httpd from the box's namespace until each
// has answered once, and returns when the last one did.
func (b *routerBox) answered(ctx context.Context, ins []chute.Info) (time.Time, error) {
	tr := &http.Transport{DialContext: b.dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	var (
		mu   sync.Mutex
		last time.Time
		wg   sync.WaitGroup
		errs = make([]error, len(ins))
	)
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ip := in.IP
				if ip == "" {
					// Not attached yet: ask again (a booting daemon).
					if cur, err := b.d.chute(ctx, in.Name); err == nil {
						ip = cur.IP
					}
				}
				if ip != "" {
					if resp, err := hc.Get("http://" + net.JoinHostPort(ip, "80") + "/"); err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							mu.Lock()
							if now := time.Now(); now.After(last) {
								last = now
							}
							mu.Unlock()
							return
						}
					}
				}
				select {
				case <-ctx.Done():
					errs[i] = fmt.Errorf("%s did not answer: %w", in.Name, ctx.Err())
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	return last, errors.Join(errs...)
}

// routerResult is what the suite measured.
type routerResult struct {
	rss       map[int]procMem // daemon, by chute count
	maps      map[int]daemonMaps
	ovsRSS    map[int]procMem // ovs-vswitchd + ovsdb-server
	box       map[int]boxMem
	chutesMem map[int]boxMem // sum over the chutes' groups
	// servers is the RssAnon of the processes serving the chutes (the
	// daemon's monitor, or shims; see chuteServers), added up; nServers,
	// how many there are.
	servers     map[int]int64
	nServers    map[int]int
	shimInGroup bool
	idle        idleSample     // 30 chutes
	boots       map[int]sample // serve start → every chute answering
	apiUp       map[int]sample // serve start → API answering
	fit         int            // chutes that ran and answered
	fitCapped   bool
	fitErr      string
	// fitSilent is how many of the fit chutes, each answering when it was
	// installed, no longer answered at the end.
	fitSilent int
	fitBox    boxMem
	fitOOM    uint64 // OOM kills in the box, over the whole run
	// fitOOMGateway is those of the daemon's and OVS's groups (the
	// daemon, its shims, OVS), not a chute's.
	fitOOMGateway uint64
	daemonOOMAdj  string // the daemon's oom_score_adj at the end; "" if it died
	load          string
}

// procMem is a process's resident memory: VmRSS and RssAnon, and from
// smaps_rollup its proportional share (Pss: a page shared by k processes
// counts 1/k) and its private pages (no other process maps them).
type procMem struct{ rss, anon, pss, private int64 }

type boxMem struct{ usage, anon int64 }

// daemonMaps is where the daemon's resident memory is, from
// /proc/PID/smaps and status: its file-backed pages (RssFile) by mapping,
// the binary's code (r-xp), read-only data (r--p: rodata, pclntab, type
// data) and data (rw-p), and bbolt's mmap of the store; shared memory;
// its threads.
type daemonMaps struct {
	file, shmem        int64
	code, rodata, data int64
	store              int64
	threads            int
}

func readDaemonMaps(pid int) (daemonMaps, error) {
	var m daemonMaps
	var err error
	if m.file, err = statusBytes(pid, "RssFile"); err != nil {
		return m, err
	}
	if m.shmem, err = statusBytes(pid, "RssShmem"); err != nil {
		return m, err
	}
	th, err := procStatus(pid, "Threads")
	if err != nil {
		return m, err
	}
	if m.threads, err = strconv.Atoi(th); err != nil {
		return m, fmt.Errorf("threads of %d: %w", pid, err)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return m, err
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return m, err
	}
	return m, m.addSmaps(string(smaps), exe)
}

// addSmaps adds the Rss of smaps' mappings of the binary exe and of the
// store to m.
func (m *daemonMaps) addSmaps(smaps, exe string) error {
	var into *int64 // the current mapping's class; nil: not one we split
	for line := range strings.Lines(smaps) {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			into = nil
			path := ""
			if len(f) >= 6 {
				path = f[5]
			}
			switch {
			case path == exe && f[1] == "r-xp":
				into = &m.code
			case path == exe && f[1] == "r--p":
				into = &m.rodata
			case path == exe:
				into = &m.data
			case strings.HasSuffix(path, "/paradrop.db"):
				into = &m.store
			}
			continue
		}
		if into != nil && len(f) == 3 && f[0] == "Rss:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return fmt.Errorf("smaps: %q: %w", line, err)
			}
			*into += kb << 10
		}
	}
	return nil
}

// measure runs the suite's steps in order: empty box, 10 and 30 chutes,
// boots after power cuts at 30, 10 and 1 chutes, then the capacity search.
func (b *routerBox) measure(ctx context.Context, r *routerResult) error {
	r.rss, r.ovsRSS, r.box, r.chutesMem = map[int]procMem{}, map[int]procMem{}, map[int]boxMem{}, map[int]boxMem{}
	r.maps = map[int]daemonMaps{}
	r.servers, r.nServers, r.boots, r.apiUp = map[int]int64{}, map[int]int{}, map[int]sample{}, map[int]sample{}
	fmt.Printf("booting the box (%d MiB, %.2f CPU): OVS, then the daemon...\n", boxMemory>>20, boxCPU)
	if _, err := b.boot(ctx); err != nil {
		return err
	}
	if err := b.snapshot(ctx, r, 0); err != nil {
		return err
	}
	n := 0
	for _, target := range []int{10, 30} {
		fmt.Printf("installing chutes %d..%d...\n", n+1, target)
		for ; n < target; n++ {
			if err := b.install(ctx, n+1); err != nil {
				return err
			}
		}
		if err := b.snapshot(ctx, r, n); err != nil {
			return err
		}
	}
	fmt.Printf("daemon idle CPU with 30 chutes over %s...\n", routerIdleFor)
	if err := b.idleCPU(ctx, r); err != nil {
		return err
	}
	if b.memoryOnly {
		return nil
	}
	for _, target := range []int{30, 10, 1} {
		for ; n > target; n-- {
			if err := b.d.change(ctx, "DELETE", "/chutes/"+chuteName(n), nil); err != nil {
				return err
			}
		}
		for i := range routerBoots {
			fmt.Printf("power cut %d/%d with %d chutes...\n", i+1, routerBoots, n)
			api, all, err := b.cutAndBoot(ctx)
			if err != nil {
				return err
			}
			r.apiUp[n] = append(r.apiUp[n], api)
			r.boots[n] = append(r.boots[n], all)
			fmt.Printf("  API after %s, all %d answering after %s\n", ms(api), n, ms(all))
		}
	}
	fmt.Printf("filling the box with 16 MiB httpd chutes (at most %d)...\n", routerMaxChutes)
	for ; n < routerMaxChutes; n++ {
		if err := b.install(ctx, n+1); err != nil {
			r.fitErr = err.Error()
			break
		}
	}
	r.fit, r.fitCapped = n, n == routerMaxChutes
	if ins, err := b.chutes(ctx); err == nil && r.fitErr == "" {
		// All of them must still answer, not just the last: asked one at
		// a time, as a user would, each within answerWithin (all at once,
		// a busybox httpd forking for each, the box's 0.25 CPU and page
		// cache answer a few within that time).
		for _, in := range ins {
			actx, cancel := context.WithTimeout(ctx, answerWithin)
			_, err := b.answered(actx, []chute.Info{in})
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.fitSilent++
			}
		}
	}
	r.fitBox, _ = readBoxMem(b.box)
	r.fitOOM = oomKillsBelow(b.box)
	r.fitOOMGateway = oomKillsBelow(b.box+"/daemon") + oomKillsBelow(b.box+"/ovs")
	select {
	case <-b.d.exited:
		r.fitErr += "; the daemon is dead: " + b.d.cmd.ProcessState.String()
	default:
		adj, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", b.d.cmd.Process.Pid))
		r.daemonOOMAdj = strings.TrimSpace(string(adj))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	r.load = strings.Join(strings.Fields(string(load))[:3], " ")
	return nil
}

// measureIdle boots the box with 30 chutes and measures only its idle CPU
// over windows windows, with their medians: to compare builds quickly.
func (b *routerBox) measureIdle(ctx context.Context, windows int) error {
	fmt.Printf("booting the box (%d MiB, %.2f CPU): OVS, then the daemon...\n", boxMemory>>20, boxCPU)
	if _, err := b.boot(ctx); err != nil {
		return err
	}
	fmt.Println("installing chutes 1..30...")
	for n := 1; n <= 30; n++ {
		if err := b.install(ctx, n); err != nil {
			return err
		}
	}
	if err := sleepCtx(ctx, routerSettle); err != nil {
		return err
	}
	fmt.Printf("daemon (pid %d) idle CPU with 30 chutes, %d windows of %s...\n", b.d.pid(), windows, routerIdleFor)
	var daemon, shims, box, dsw, ssw []float64
	for range windows {
		s, err := b.idleWindow(ctx, routerIdleFor)
		if err != nil {
			return err
		}
		daemon, shims, box = append(daemon, s.daemon), append(shims, s.shims), append(box, s.box)
		dsw, ssw = append(dsw, s.daemonSwitches), append(ssw, s.shimSwitches)
	}
	med := func(v []float64) float64 { return slices.Sorted(slices.Values(v))[len(v)/2] }
	fmt.Printf("medians: daemon %.2f%% of a core (%.1f switches/s), shims %.2f%% (%.2f switches/s), whole box %.2f%%\n",
		med(daemon), med(dsw), med(shims), med(ssw), med(box))
	return nil
}

// cutAndBoot kills everything in the box, boots it, and times from the
// daemon's start to its API and to every installed chute answering.
func (b *routerBox) cutAndBoot(ctx context.Context) (api, all time.Duration, err error) {
	ins, err := b.chutes(ctx)
	if err != nil {
		return 0, 0, err
	}
	if err := b.powerCut(); err != nil {
		return 0, 0, err
	}
	started, err := b.boot(ctx)
	if err != nil {
		return 0, 0, err
	}
	api = time.Since(started)
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	last, err := b.answered(actx, ins)
	if err != nil {
		return 0, 0, err
	}
	if last.Before(started.Add(api)) {
		last = started.Add(api)
	}
	return api, last.Sub(started), nil
}

// snapshot reads the memory figures with n chutes, after the box idled.
func (b *routerBox) snapshot(ctx context.Context, r *routerResult, n int) error {
	if err := sleepCtx(ctx, routerSettle); err != nil {
		return err
	}
	var err error
	if r.rss[n], err = readProcMem(b.d.pid()); err != nil {
		return err
	}
	if r.maps[n], err = readDaemonMaps(b.d.pid()); err != nil {
		return err
	}
	for _, p := range []string{"ovs-vswitchd", "ovsdb-server"} {
		pid, err := readPidfile(filepath.Join(b.ovsDir, p+".pid"))
		if err != nil {
			return err
		}
		m, err := readProcMem(pid)
		if err != nil {
			return err
		}
		r.ovsRSS[n] = procMem{rss: r.ovsRSS[n].rss + m.rss, anon: r.ovsRSS[n].anon + m.anon}
	}
	if r.box[n], err = readBoxMem(b.box); err != nil {
		return err
	}
	ins, err := b.chutes(ctx)
	if err != nil {
		return err
	}
	var sum boxMem
	var pids []int
	for _, in := range ins {
		m, err := readBoxMem(b.box + "/chutes/" + in.Name)
		if err != nil {
			return err
		}
		sum.usage += m.usage
		sum.anon += m.anon
		pids = append(pids, in.Pid)
		if ppid, err := procStatus(in.Pid, "PPid"); err == nil {
			cg, _ := os.ReadFile("/proc/" + ppid + "/cgroup")
			r.shimInGroup = strings.Contains(string(cg), "/chutes/"+in.Name)
		}
	}
	r.chutesMem[n] = sum
	if r.servers[n], r.nServers[n], err = serversRSS(b.d.pid(), pids); err != nil {
		return err
	}
	fmt.Printf("  %d chutes: daemon VmRSS %s (Pss %s, private %s, anon %s), OVS %s (anon %s), %d monitor(s)/shims anon %s, box %s (anon %s), chutes' groups %s (anon %s)\n",
		n, mib(r.rss[n].rss), mib(r.rss[n].pss), mib(r.rss[n].private), mib(r.rss[n].anon), mib(r.ovsRSS[n].rss), mib(r.ovsRSS[n].anon),
		r.nServers[n], mib(r.servers[n]), mib(r.box[n].usage), mib(r.box[n].anon), mib(sum.usage), mib(sum.anon))
	return nil
}

// idleSample is what the daemon, the chutes' shims and the whole box
// spend over one idle window, with 30 chutes.
type idleSample struct {
	window          time.Duration
	daemon, box     float64 // % of a core
	shims           float64 // % of a core, all shims together
	daemonSwitches  float64 // context switches per second, all threads
	shimSwitches    float64 // the same, all shims together
	shimsNeverAwake int     // shims with no context switch in the window
	nShims          int
}

// idleCPU is the CPU the daemon, the shims and the whole box use while
// nothing happens, with 30 chutes.
func (b *routerBox) idleCPU(ctx context.Context, r *routerResult) error {
	s, err := b.idleWindow(ctx, routerIdleFor)
	if err != nil {
		return err
	}
	r.idle = s
	return nil
}

func (b *routerBox) idleWindow(ctx context.Context, d time.Duration) (idleSample, error) {
	var s idleSample
	g, err := cgroup.Load(b.box)
	if err != nil {
		return s, err
	}
	ins, err := b.chutes(ctx)
	if err != nil {
		return s, err
	}
	var pids []int
	for _, in := range ins {
		pids = append(pids, in.Pid)
	}
	shims, err := chuteServers(b.d.pid(), pids)
	if err != nil {
		return s, err
	}
	s.nShims = len(shims)
	read := func() (d, sh time.Duration, dsw, shsw int64, shsws []int64, st cgroup.Stats, err error) {
		if d, err = procCPU(b.d.pid()); err != nil {
			return
		}
		dsw = procSwitches(b.d.pid())
		for _, p := range shims {
			c, err := procCPU(p)
			if err != nil {
				continue
			}
			sh += c
			n := procSwitches(p)
			shsw += n
			shsws = append(shsws, n)
		}
		st, err = g.Stats()
		return
	}
	d0, sh0, dsw0, shsw0, per0, st0, err := read()
	if err != nil {
		return s, err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, d); err != nil {
		return s, err
	}
	d1, sh1, dsw1, shsw1, per1, st1, err := read()
	if err != nil {
		return s, err
	}
	s.window = time.Since(t0)
	pct := func(v float64) float64 { return 100 * v / float64(s.window) }
	s.daemon = pct(float64(d1 - d0))
	s.shims = pct(float64(sh1 - sh0))
	s.box = pct(float64(st1.CPUUsageNs - st0.CPUUsageNs))
	s.daemonSwitches = float64(dsw1-dsw0) / s.window.Seconds()
	s.shimSwitches = float64(shsw1-shsw0) / s.window.Seconds()
	if len(per0) == len(per1) {
		for i := range per0 {
			if per1[i] == per0[i] {
				s.shimsNeverAwake++
			}
		}
	}
	fmt.Printf("  daemon %.2f%% of a core (%.1f context switches/s), %d monitor(s)/shims %.2f%% (%.2f switches/s, %d never woke), whole box %.2f%%\n",
		s.daemon, s.daemonSwitches, s.nShims, s.shims, s.shimSwitches, s.shimsNeverAwake, s.box)
	return s, nil
}

// procSwitches adds up the context switches of every thread of pid: an
// idle process switches only when a timer or an event wakes it.
func procSwitches(pid int) int64 {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func readProcMem(pid int) (procMem, error) {
	rss, err := statusBytes(pid, "VmRSS")
	if err != nil {
		return procMem{}, err
	}
	anon, err := statusBytes(pid, "RssAnon")
	if err != nil {
		return procMem{}, err
	}
	m := procMem{rss: rss, anon: anon}
	roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return procMem{}, err
	}
	for _, line := range strings.Split(string(roll), "\n") {
		k, v, ok := strings.Cut(line, ":")
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if !ok || err != nil {
			continue
		}
		switch k {
		case "Pss":
			m.pss = kb << 10
		case "Private_Clean", "Private_Dirty":
			m.private += kb << 10
		}
	}
	return m, nil
}

// readBoxMem reads a group's charged memory and its anonymous part
// (what cannot be dropped like page cache) on v1 or v2.
func readBoxMem(path string) (boxMem, error) {
	dir, usageFile, anonKey := filepath.Join("/sys/fs/cgroup", path), "memory.current", "anon"
	if cgroup.Detect() == cgroup.V1 {
		dir, usageFile, anonKey = filepath.Join("/sys/fs/cgroup/memory", path), "memory.usage_in_bytes", "total_rss"
	}
	var m boxMem
	u, err := os.ReadFile(filepath.Join(dir, usageFile))
	if err != nil {
		return m, err
	}
	if m.usage, err = strconv.ParseInt(strings.TrimSpace(string(u)), 10, 64); err != nil {
		return m, err
	}
	st, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == anonKey {
			m.anon, err = strconv.ParseInt(v, 10, 64)
			return m, err
		}
	}
	return m, fmt.Errorf("no %s in %s/memory.stat", anonKey, dir)
}

// oomKillsBelow adds up the OOM kills of path's groups: v1 counts a kill
// in the victim's group, not in the one whose limit was hit.
func oomKillsBelow(path string) uint64 {
	var n uint64
	if g, err := cgroup.Load(path); err == nil {
		if st, err := g.Stats(); err == nil {
			n = st.OOMKills
		}
	}
	children, _ := cgroup.List(path)
	for _, c := range children {
		n += oomKillsBelow(path + "/" + c)
	}
	return n
}

// removeCgroupTree kills what still runs below path and removes its
// groups, deepest first, in every hierarchy.
func removeCgroupTree(path string) error {
	g, err := cgroup.Load(path)
	if errors.Is(err, cgroup.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	children, err := cgroup.List(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range children {
		errs = append(errs, removeCgroupTree(path+"/"+c))
	}
	if err := g.Kill(); err != nil {
		errs = append(errs, err)
	}
	if err := g.Delete(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func metOr(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (r *routerResult) report() string {
	var s strings.Builder
	shim := (r.servers[30] - r.servers[0]) / 30
	perDaemon := (r.rss[30].anon - r.rss[0].anon) / 30
	perOVS := (r.ovsRSS[30].anon - r.ovsRSS[0].anon) / 30
	perChute := shim + perDaemon + perOVS
	boxPer := ((r.box[30].anon - r.box[0].anon) - r.chutesMem[30].anon) / 30
	if r.shimInGroup {
		boxPer += shim
	}
	b30 := r.boots[30].median()
	fit := strconv.Itoa(r.fit)
	if r.fitCapped {
		fit = "≥ " + fit
	}
	fmt.Fprintf(&s, "The box: one cgroup parent (%s) limited to %d MiB and %.2f of a CPU holds the daemon (`paradrop serve`, built as make cross builds a gateway's, -tags %s), "+
		"its Open vSwitch (ovsdb-server and ovs-vswitchd, userspace datapath, started by the bench in their own directory) and every chute, "+
		"in a network namespace of its own. Chutes: busybox httpd, 16 MiB memory limit each, attached to the bridge, polled over HTTP from the box's namespace.\n\n",
		cgroup.Detect(), boxMemory>>20, boxCPU, strings.Join(gatewayTags, ","))
	fmt.Fprintf(&s, "- Chutes that run and answer: **%s**", fit)
	if r.fitSilent > 0 {
		fmt.Fprintf(&s, " installed, each answering at its install, of which **%d** did not answer within %s at the end, asked one at a time", r.fitSilent, answerWithin)
	}
	if r.fitErr != "" {
		fmt.Fprintf(&s, " (the next one: %s)", oneLine(r.fitErr))
	}
	fmt.Fprintf(&s, "; the box's memory then %s (anon %s), %d OOM kills in the box, %d of them in the daemon's and OVS's groups (daemon, monitor, OVS)",
		mib(r.fitBox.usage), mib(r.fitBox.anon), r.fitOOM, r.fitOOMGateway)
	if r.daemonOOMAdj != "" {
		fmt.Fprintf(&s, "; the daemon (oom_score_adj %s) survived", r.daemonOOMAdj)
	}
	s.WriteString(".\n")
	fmt.Fprintf(&s, "- Memory a chute costs beyond its own processes: **%s** (monitor %s + daemon %s + OVS %s, growth of their private memory from 0 to 30 chutes, per chute; "+
		"the monitor itself: %s with no chute, %d process(es) serving 30 chutes); from the box's cgroup: %s. Goal ≤ 1 MiB: %s.\n",
		mib(perChute), mib(shim), mib(perDaemon), mib(perOVS), mib(r.servers[0]), r.nServers[30], mib(boxPer), metOr(perChute <= goalOverhead))
	fmt.Fprintf(&s, "- Daemon VmRSS: %s with 0, %s with 10, **%s with 30 chutes**. Goal ≤ 16 MiB: %s.\n",
		mib(r.rss[0].rss), mib(r.rss[10].rss), mib(r.rss[30].rss), metOr(r.rss[30].rss <= goalDaemon))
	fmt.Fprintf(&s, "- Daemon idle CPU with 30 chutes: **%.2f%% of a core** over %s, %.1f context switches a second (the monitor: %.2f%%, %.2f switches a second; the whole box: %.2f%%). Goal ≤ %.1f%%: %s.\n",
		r.idle.daemon, r.idle.window.Round(time.Second), r.idle.daemonSwitches, r.idle.shims, r.idle.shimSwitches,
		r.idle.box, goalIdleCPU, metOr(r.idle.daemon <= goalIdleCPU))
	fmt.Fprintf(&s, "- Boot after a power cut, `serve` start to every chute answering (median of %d): 1 chute %s, 10 chutes %s, **30 chutes %s**. Goal ≤ 10 s: %s.\n\n",
		routerBoots, ms(r.boots[1].median()), ms(r.boots[10].median()), ms(b30), metOr(b30 > 0 && b30 <= goalBoot30))

	t := r.memoryTable()
	t.print(os.Stdout)
	s.WriteString(t.markdown())
	s.WriteString("\nWhere the daemon's VmRSS is:\n\n")
	mt := r.mapsTable()
	mt.print(os.Stdout)
	s.WriteString(mt.markdown())
	s.WriteString("\n")
	bt := newTable("power cut with", "n", "API answers, median", "all chutes answer, median", "max")
	for _, n := range []int{1, 10, 30} {
		bt.add(fmt.Sprintf("%d chutes", n), strconv.Itoa(len(r.boots[n])), ms(r.apiUp[n].median()), ms(r.boots[n].median()), ms(slices.Max(r.boots[n])))
	}
	bt.print(os.Stdout)
	s.WriteString(bt.markdown())
	fmt.Fprintf(&s, "\nLoad average at the end of the measurements: %s (2 CPUs shared with other work: figures are noisy).\n", r.load)
	s.WriteString(`
How it is measured:

- Memory: read after the box idled ` + routerSettle.String() + `. A chute's cost beyond its own
  processes is the growth, from 0 to 30 chutes, of the private memory
  (RssAnon) of the daemon's monitor (the one process that is every
  chute's shim, started with the daemon; or the shims, where chutes run
  under shims of their own), of the daemon and of OVS, divided by 30. The
  box's figure is the growth of the box's anonymous memory minus the
  chutes' groups' own, per chute (the monitor counted once whichever group
  it is charged to); it leaves out kernel objects (veth, netns, taps,
  thread stacks) and page cache.
- Idle CPU: the daemon's user+system time (/proc/PID/stat) over the window,
  nothing asked of it, and its threads' context switches (each a wake-up);
  the monitor's the same; the box's is its cgroup's CPU usage (OVS, the
  monitor and chutes too).
- Power cut: SIGKILL to every process of the box at once (the cgroup frozen
  first), then OVS started again from its database, then ` + "`serve`" + `; the time
  runs from the daemon's exec to the last chute's first HTTP 200. Unlike a
  real power cut, the chutes' cgroups, mounts and pinned namespaces survive
  the kill; the daemon's recovery takes them over or rebuilds them.
- Capacity: chutes installed one by one (through the API, waiting for the
  change) until an install fails or its httpd does not answer within ` + answerWithin.String() + `, at
  most ` + strconv.Itoa(routerMaxChutes) + `; then every chute must still answer, asked one at a time (each within 15s).
`)
	return s.String()
}

// memoryTable is the memory readings with 0, 10 and 30 chutes.
func (r *routerResult) memoryTable() *table {
	t := newTable("chutes", "daemon VmRSS", "daemon Pss", "daemon private", "daemon RssAnon", "OVS RssAnon", "monitor RssAnon", "box memory (anon)", "chutes' groups (anon)")
	for _, n := range []int{0, 10, 30} {
		t.add(strconv.Itoa(n), mib(r.rss[n].rss), mib(r.rss[n].pss), mib(r.rss[n].private), mib(r.rss[n].anon), mib(r.ovsRSS[n].anon), mib(r.servers[n]),
			fmt.Sprintf("%s (%s)", mib(r.box[n].usage), mib(r.box[n].anon)), fmt.Sprintf("%s (%s)", mib(r.chutesMem[n].usage), mib(r.chutesMem[n].anon)))
	}
	return t
}

// mapsTable is where the daemon's resident memory is, with 0, 10 and 30
// chutes.
func (r *routerResult) mapsTable() *table {
	t := newTable("chutes", "daemon RssAnon", "RssFile", "binary: code", "read-only data", "data", "store (bbolt mmap)", "RssShmem", "threads")
	for _, n := range []int{0, 10, 30} {
		m := r.maps[n]
		t.add(strconv.Itoa(n), mib(r.rss[n].anon), mib(m.file), mib(m.code), mib(m.rodata), mib(m.data), mib(m.store), mib(m.shmem), strconv.Itoa(m.threads))
	}
	return t
}

func oneLine(s string) string {
	// An API error's JSON body spans lines: keep its message too.
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
