package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"paradrop/api"
	"paradrop/chute"
	"paradrop/examples"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
	"paradrop/sdn/ovsdb"
)

// cycles is a flag only so that a person chasing a leak can run fewer;
// CI runs the default.
var cycles = flag.Int("soak.cycles", 200, "install/update/remove cycles")

const (
	// warmup cycles run before the baseline, so that what the daemon
	// builds once (the chutes' monitor, code paged in, pools) is not counted.
	warmup = 10
	// settle is how long the daemon idles before each RSS reading, the
	// same both times: the Go runtime returns freed memory lazily.
	settle = 10 * time.Second
	// maxRSSGrowth is the bound on what 200 cycles may cost.
	maxRSSGrowth = 2 << 20
)

// soakManifest is a chute that takes every path of a cycle: a /data volume,
// a network attachment with an exposed port, a health check the update is
// judged by. stable_for 0 keeps a cycle short.
const soakManifest = `
name: soak
version: %s
command: ["/usr/sbin/httpd", "-f", "-p", "80", "-h", "/www"]
stop_grace: 2s
resources: {memory: 16Mi, pids: 16, disk: 4Mi, tmp: 1Mi}
health:
  http: {port: 80, path: /}
  interval: 1s
update: {stable_for: 0s}
net:
  expose: [{port: 80, gateway_port: 8001}]
`

// TestSoakInstallUpdateRemove runs the cycles against `paradrop serve` in a
// network namespace of its own, then counts what the daemon holds.
func TestSoakInstallUpdateRemove(t *testing.T) {
	nettest.Require(t, "busybox", "ovsdb-server", "ovs-vswitchd", "mkfs.ext4")
	pkgs := map[string][]byte{}
	for _, v := range []string{"1.0.0", "1.0.1"} {
		pkg, err := examples.Package(fmt.Sprintf(soakManifest, v), map[string]string{"www/index.html": "ok\n"})
		if err != nil {
			t.Fatal(err)
		}
		pkgs[v] = pkg
	}
	g := startGateway(t)
	cycle := func() {
		// A package cut short and an upload abandoned half-way: each
		// is staged before it fails.
		if _, err := g.call("POST", "/chutes", pkgs["1.0.0"][:len(pkgs["1.0.0"])/2]); err == nil {
			t.Fatal("a truncated package was accepted")
		}
		g.abandonUpload(pkgs["1.0.0"])
		g.change("POST", "/chutes", pkgs["1.0.0"])
		// What an operator reads of a running chute, followed logs
		// included, which the client leaves after a while.
		for _, path := range []string{"/chutes/soak", "/chutes/soak/logs?tail=10", "/chutes/soak/usage", "/chutes/soak/flows"} {
			if _, err := g.call("GET", path, nil); err != nil {
				t.Fatal(err)
			}
		}
		g.followLogs(100 * time.Millisecond)
		g.change("PUT", "/chutes/soak", pkgs["1.0.1"])
		g.change("DELETE", "/chutes/soak", nil)
	}

	before := g.holdings()
	// A running chute shows in every count (staging is empty by then), or
	// the counts could not see a leak.
	g.change("POST", "/chutes", pkgs["1.0.0"])
	held := g.holdings()
	for _, kind := range hostKinds {
		if kind != "staging dir" && len(missingFrom(before[kind], held[kind])) == 0 {
			t.Errorf("a running chute holds no %s that the count sees: %q", kind, held[kind])
		}
	}
	g.change("DELETE", "/chutes/soak", nil)
	for range warmup {
		cycle()
	}
	g.settle(before)
	base := g.holdings()
	rss0 := g.rss()

	start := time.Now()
	for i := range *cycles {
		cycle()
		if i%50 == 49 {
			t.Logf("%d cycles, %.2fs per cycle, RSS %s", i+1, time.Since(start).Seconds()/float64(i+1), g.rss())
		}
	}
	perCycle := time.Since(start) / time.Duration(max(*cycles, 1))

	after := g.settle(before)
	rss1 := g.rss()
	t.Logf("%d cycles, %s per cycle; daemon RSS %s -> %s (%+.2f MiB)",
		*cycles, perCycle.Round(time.Millisecond), rss0, rss1, float64(rss1.total-rss0.total)/(1<<20))

	for _, kind := range hostKinds {
		if extra := missingFrom(before[kind], after[kind]); len(extra) > 0 {
			t.Errorf("left over: %d %s(s): %q", len(extra), kind, extra)
		}
	}
	if extra := missingFrom(base["process"], after["process"]); len(extra) > 0 {
		t.Errorf("processes left over: %q", extra)
	}
	if n0, n1 := len(base["fd"]), len(after["fd"]); n1 > n0 {
		t.Errorf("daemon fds: %d -> %d; new: %v", n0, n1, fdKinds(missingFrom(base["fd"], after["fd"])))
	}
	if growth := rss1.total - rss0.total; growth > maxRSSGrowth {
		t.Errorf("daemon RSS grew by %.2f MiB over %d cycles (%s -> %s), more than %d MiB",
			float64(growth)/(1<<20), *cycles, rss0, rss1, maxRSSGrowth>>20)
	}
}

// gateway is `paradrop serve` in a network namespace of its own (its
// bridge, veths, switch and nftables are there, off the host's), with its
// own data directory, cgroup parent and Open vSwitch.
type gateway struct {
	t            *testing.T
	host         *nettest.Host
	top, data    string
	bridge       string
	cgroupParent string
	cmd          *exec.Cmd
	exited       chan struct{}
	base         string
	token        string
	hc           *http.Client
}

func startGateway(t *testing.T) *gateway {
	top := t.TempDir()
	// Chutes' mapped users must traverse the path to their rootfs.
	os.Chmod(filepath.Dir(top), 0o711)
	g := &gateway{
		t: t, host: nettest.NewHost(t), top: top, data: filepath.Join(top, "data"),
		bridge:       nettest.Name("pdsk"),
		cgroupParent: fmt.Sprintf("/paradrop-soak-%d", os.Getpid()),
		exited:       make(chan struct{}),
	}
	g.hc = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netconf.InNetNS(g.host.NetNS, func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}

	bin := filepath.Join(top, "paradrop")
	build := exec.Command("go", "build", "-o", bin, "paradrop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	listen := g.freePort()
	g.base = "http://" + listen + "/api/v1"
	logf, err := os.Create(filepath.Join(top, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	g.cmd = exec.Command(bin, "serve", "--data", g.data, "--listen", listen,
		"--cgroup-parent", g.cgroupParent, "--bridge", g.bridge, "--controller", g.freePort(),
		// An OVSDB that does not answer: the daemon starts its own
		// Open vSwitch under its data directory, even where the system
		// runs one.
		"--ovsdb", "unix:"+filepath.Join(top, "no-such-ovsdb.sock"))
	// MADV_DONTNEED: freed memory leaves the RSS when the runtime returns it.
	g.cmd.Env = append(os.Environ(), "GODEBUG=madvdontneed=1")
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := netconf.InNetNS(g.host.NetNS, g.cmd.Start); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	go func() { g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(g.stop)

	deadline := time.Now().Add(90 * time.Second)
	for {
		if tok, err := os.ReadFile(filepath.Join(g.data, api.TokenFile)); err == nil {
			g.token = strings.TrimSpace(string(tok))
			if _, err := g.call("GET", "/health", nil); err == nil {
				return g
			}
		}
		select {
		case <-g.exited:
			t.Fatalf("daemon exited at start-up:\n%s", g.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering:\n%s", g.logTail())
		}
	}
}

// freePort returns a loopback address free in the gateway's namespace.
func (g *gateway) freePort() string {
	var addr string
	err := netconf.InNetNS(g.host.NetNS, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		return ln.Close()
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return addr
}

// stop removes the chute if a failure left it, ends the daemon (which
// stops its Open vSwitch) and removes the cgroup parent.
func (g *gateway) stop() {
	if _, err := g.call("GET", "/chutes/soak", nil); err == nil {
		g.call("DELETE", "/chutes/soak?wait=1", nil)
	}
	g.hc.CloseIdleConnections()
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
	// What a leak left must not outlive the test: mounts under its
	// directory (deepest first, so that TempDir can go) and groups.
	mounts, _ := mountsUnder(g.top)
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
	groups, _ := cgroupsUnder(g.cgroupParent)
	for i := len(groups) - 1; i >= 0; i-- {
		os.Remove(groups[i])
	}
	for _, h := range cgroupHierarchies() {
		os.Remove(filepath.Join(h, g.cgroupParent))
	}
	if g.t.Failed() {
		g.t.Logf("daemon log (tail):\n%s", g.logTail())
	}
}

func (g *gateway) logTail() string {
	b, _ := os.ReadFile(filepath.Join(g.top, "daemon.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (g *gateway) call(method, path string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, g.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode/100 != 2 {
		err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	return data, err
}

// abandonUpload sends half of pkg as an install and hangs up.
func (g *gateway) abandonUpload(pkg []byte) {
	g.t.Helper()
	body := io.MultiReader(bytes.NewReader(pkg[:len(pkg)/2]), iotest.ErrReader(errors.New("client gone")))
	req, err := http.NewRequest("POST", g.base+"/chutes", body)
	if err != nil {
		g.t.Fatal(err)
	}
	req.ContentLength = int64(len(pkg))
	req.Header.Set("Authorization", "Bearer "+g.token)
	if resp, err := g.hc.Do(req); err == nil {
		resp.Body.Close()
		g.t.Fatalf("abandoned upload answered %s", resp.Status)
	}
}

// followLogs follows the chute's logs for d, then hangs up.
func (g *gateway) followLogs(d time.Duration) {
	g.t.Helper()
	// The clock starts at the answer: on a busy machine the headers alone
	// may take longer than d.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", g.base+"/chutes/soak/logs?follow=1", nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := g.hc.Do(req)
	if err != nil {
		g.t.Fatalf("follow logs: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("follow logs: %s", resp.Status)
	}
	time.AfterFunc(d, cancel)
	io.Copy(io.Discard, resp.Body) // until the client hangs up
}

// change makes a change and waits for it; it must end done.
func (g *gateway) change(method, path string, body []byte) {
	g.t.Helper()
	data, err := g.call(method, path+"?wait=1", body)
	if err != nil {
		g.t.Fatal(err)
	}
	var c chute.Change
	if err := json.Unmarshal(data, &c); err != nil {
		g.t.Fatalf("%s %s: %v: %s", method, path, err, data)
	}
	if c.State != chute.ChangeDone {
		g.t.Fatalf("%s %s: change %d ended %s: %s", method, path, c.ID, c.State, c.Error)
	}
}

// hostKinds are what a removed chute must give back to the host.
var hostKinds = []string{"mount", "loop device", "cgroup", "veth", "ovs port", "flow", "netns", "staging dir"}

// holdings lists, by kind, what the daemon holds of the host, and its
// processes and fds.
func (g *gateway) holdings() map[string][]string {
	g.t.Helper()
	h := map[string][]string{}
	add := func(kind string, items []string, err error) {
		if err != nil {
			g.t.Fatalf("count %ss: %v", kind, err)
		}
		sort.Strings(items)
		h[kind] = items
	}
	items, err := mountsUnder(g.top)
	add("mount", items, err)
	items, err = loopsUnder(g.top)
	add("loop device", items, err)
	items, err = cgroupsUnder(g.cgroupParent)
	add("cgroup", items, err)
	items, err = g.veths()
	add("veth", items, err)
	items, err = g.ports()
	add("ovs port", items, err)
	items, err = g.flows()
	add("flow", items, err)
	items, err = dirNames(filepath.Join(g.data, "netns"))
	add("netns", items, err)
	items, err = dirNames(filepath.Join(g.data, "staging"))
	add("staging dir", items, err)
	items, err = processesOf(g.cmd.Process.Pid, filepath.Join(g.top, "paradrop"))
	add("process", items, err)
	items, err = fds(g.cmd.Process.Pid)
	add("fd", items, err)
	return h
}

// settle waits until the host objects are back to want (connections and
// goroutines wind down after an answer), then lets the daemon idle for
// settle, and returns the holdings it found.
func (g *gateway) settle(want map[string][]string) map[string][]string {
	g.hc.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	var h map[string][]string
	for {
		h = g.holdings()
		same := true
		for _, kind := range hostKinds {
			same = same && len(missingFrom(want[kind], h[kind])) == 0
		}
		if same || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(settle)
	return g.holdings()
}

// missingFrom returns the items of b that a does not hold (as multisets).
func missingFrom(a, b []string) []string {
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	var out []string
	for _, s := range b {
		if count[s] > 0 {
			count[s]--
			continue
		}
		out = append(out, s)
	}
	return out
}

// mountsUnder lists the mount points below dir, in the test's mount
// namespace (the daemon's).
func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out, err
}

// loopsUnder lists the loop devices backed by a file below dir, as
// `losetup -l` shows them.
func loopsUnder(dir string) ([]string, error) {
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		backing := strings.TrimSpace(string(b))
		if strings.HasPrefix(backing, dir+"/") {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(f)))+" "+backing)
		}
	}
	return out, nil
}

// cgroupHierarchies are the mount points of every cgroup hierarchy, v1 and
// v2.
func cgroupHierarchies() []string {
	ms, _ := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

// cgroupsUnder lists the groups below parent in every hierarchy.
func cgroupsUnder(parent string) ([]string, error) {
	var out []string
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, parent)
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if os.IsNotExist(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if d.IsDir() && p != root {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// veths lists the veth links in the gateway's namespace.
func (g *gateway) veths() ([]string, error) {
	var out []string
	err := netconf.InNetNS(g.host.NetNS, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Type() == "veth" {
				out = append(out, l.Attrs().Name)
			}
		}
		return nil
	})
	return out, err
}

// ports lists the ports of the gateway's bridge in its Open vSwitch.
func (g *gateway) ports() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := ovsdb.Dial(ctx, "unix:"+filepath.Join(g.data, "ovs", "db.sock"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.ListPorts(ctx, g.bridge)
}

// flows lists the switch's rules as the daemon reports them.
func (g *gateway) flows() ([]string, error) {
	data, err := g.call("GET", "/flows", nil)
	if err != nil {
		return nil, err
	}
	var fl struct{ Rules []sdn.Rule }
	if err := json.Unmarshal(data, &fl); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range fl.Rules {
		out = append(out, fmt.Sprintf("table %d priority %d %s %s", r.Table, r.Priority, r.Chute, r.Rule))
	}
	return out, nil
}

func dirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, err
}

// processesOf lists, as "comm", the children of pid and the other
// processes running exe (the daemon's binary, which its monitor re-executes
// and which may outlive their parent).
func processesOf(pid int, exe string) ([]string, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		self, _ := strconv.Atoi(strings.TrimSpace(s[:strings.IndexByte(s, '(')]))
		rest := strings.Fields(s[i+1:])
		target, _ := os.Readlink(filepath.Join(filepath.Dir(f), "exe"))
		if self != pid && (len(rest) > 1 && rest[1] == strconv.Itoa(pid) || target == exe) {
			out = append(out, s[strings.IndexByte(s, '(')+1:i])
		}
	}
	return out, nil
}

// fds lists what the process's open fds point at.
func fds(pid int) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		out = append(out, target)
	}
	return out, nil
}

// fdKinds sums fd targets by kind ("socket", "pipe", a path), for a
// readable message.
func fdKinds(targets []string) map[string]int {
	out := map[string]int{}
	for _, t := range targets {
		if kind, _, ok := strings.Cut(t, ":["); ok {
			t = kind
		}
		out[t]++
	}
	return out
}

// rssFigure is the daemon's resident memory, from /proc/PID/status.
type rssFigure struct{ total, anon int64 }

func (r rssFigure) String() string {
	return fmt.Sprintf("%.2f MiB (anon %.2f)", float64(r.total)/(1<<20), float64(r.anon)/(1<<20))
}

func (g *gateway) rss() rssFigure {
	g.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		g.t.Fatal(err)
	}
	var r rssFigure
	for line := range strings.Lines(string(b)) {
		key, val, _ := strings.Cut(line, ":")
		f := strings.Fields(val)
		if len(f) == 0 || !slices.Contains([]string{"VmRSS", "RssAnon"}, key) {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if key == "VmRSS" {
			r.total = kb << 10
		} else {
			r.anon = kb << 10
		}
	}
	return r
}
