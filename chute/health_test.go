package chute

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/manifest"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/sandboxtest"
)

// The hostile health command: whatever /data/probe.sh says, so that one
// installed chute serves every attack below. Without it the check passes,
// which the install's judgement needs.
const probeHealth = `
name: hp
version: 1.0.0
command: ["/bin/sleep", "1000"]
health: {command: ["/bin/sh", "-c", "test -f /data/probe.sh || exit 0; . /data/probe.sh"], interval: 1h, timeout: 3s, retries: 100}
resources: {memory: 48Mi, pids: 24}
`

// healthProbe is a gateway running probeHealth's chute.
type healthProbe struct {
	g    *gateway
	sb   *sandbox.Chute
	h    *manifest.Health
	main int // host pid of the chute's pid 1
}

func newHealthProbe(t *testing.T) *healthProbe {
	exe := sandboxtest.StaticExecutable(t)
	g := newGatewayWith(t, t.TempDir(), func(c *Config) { c.Executable = exe })
	p := &healthProbe{g: g}
	t.Cleanup(func() { p.g.removeAll() })
	g.install(pkg(t, probeHealth, nil))
	e, err := g.m.entry("hp")
	if err != nil {
		t.Fatal(err)
	}
	g.m.mu.Lock()
	sb, h := e.sb, e.rec.Manifest.Health
	g.m.mu.Unlock()
	if sb == nil {
		t.Fatal("chute not running")
	}
	p.sb, p.h, p.main = sb, h, sb.Pid()
	return p
}

// run makes script the health command and runs one check, as the
// health watcher does.
func (p *healthProbe) run(t *testing.T, script string) error {
	t.Helper()
	dir := p.g.m.paths.data("hp")
	os.Remove(filepath.Join(dir, "report"))
	if err := os.WriteFile(filepath.Join(dir, "probe.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(dir, "probe.sh"))
	return p.g.m.check(context.Background(), "hp", p.sb, p.h)
}

func (p *healthProbe) data(file string) string { return readData(p.g, "hp", file) }

// fields parses "Key:\tvalue" lines.
func fields(text string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func hostFile(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHealthCommandConfined: a health command has the chute's main
// process's confinement, to the namespace, the capability and the
// seccomp filter; it cannot remount the rootfs writable, nor escape the
// chute's memory and pids limits.
func TestHealthCommandConfined(t *testing.T) {
	p := newHealthProbe(t)

	t.Run("same confinement as the main process", func(t *testing.T) {
		err := p.run(t, `exec > /data/report 2>&1
grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
for n in cgroup ipc mnt net pid user uts; do echo "ns-$n: $(readlink /proc/self/ns/$n)"; done
echo "cgroup: $(cat /proc/self/cgroup | tr '\n' ' ')"
echo "main-cgroup: $(cat /proc/1/cgroup | tr '\n' ' ')"
echo "ids: $(id -u) $(id -g)"
echo "main-ids: $(grep -E '^(Uid|Gid)' /proc/1/status | tr -s '\t\n' '  ')"
echo "my-ids: $(grep -E '^(Uid|Gid)' /proc/self/status | tr -s '\t\n' '  ')"
echo "env: $(tr '\0' ' ' < /proc/$$/environ)"
echo "cwd: $(pwd)"
sed 's/  */ /g; s/^/limit: /' /proc/self/limits
`)
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		got := fields(p.data("report"))
		if len(got) < 10 {
			t.Fatalf("health command reported %q", p.data("report"))
		}
		main := fields(hostFile(t, p.main, "status"))
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"} {
			if got[k] != main[k] {
				t.Errorf("%s: health command %q, chute %q", k, got[k], main[k])
			}
		}
		for _, n := range []string{"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"} {
			want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.main, n))
			if err != nil {
				t.Fatal(err)
			}
			if got["ns-"+n] != want {
				t.Errorf("%s namespace: health command %q, chute %q", n, got["ns-"+n], want)
			}
		}
		if got["cgroup"] != got["main-cgroup"] {
			t.Errorf("cgroups: health command %q, chute %q", got["cgroup"], got["main-cgroup"])
		}
		if got["my-ids"] != got["main-ids"] || got["ids"] != "0 0" {
			t.Errorf("ids: health command %q (%s), chute %q", got["my-ids"], got["ids"], got["main-ids"])
		}
		env := strings.Fields(strings.ReplaceAll(hostFile(t, p.main, "environ"), "\x00", " "))
		if g := strings.Fields(got["env"]); !slices.Equal(g, env) {
			t.Errorf("environment: health command %q, chute %q", g, env)
		}
		if got["cwd"] != "/" {
			t.Errorf("cwd %q, want the chute's /", got["cwd"])
		}
		var limits []string
		for _, l := range strings.Split(p.data("report"), "\n") {
			if rest, ok := strings.CutPrefix(l, "limit: "); ok {
				limits = append(limits, strings.Join(strings.Fields(rest), " "))
			}
		}
		var mainLimits []string
		for _, l := range strings.Split(strings.TrimSpace(hostFile(t, p.main, "limits")), "\n") {
			mainLimits = append(mainLimits, strings.Join(strings.Fields(l), " "))
		}
		if strings.Join(limits, "\n") != strings.Join(mainLimits, "\n") {
			t.Errorf("rlimits: health command\n%s\nchute\n%s", strings.Join(limits, "\n"), strings.Join(mainLimits, "\n"))
		}
	})

	t.Run("cannot make the rootfs writable", func(t *testing.T) {
		p.run(t, `exec > /data/report 2>&1
mount -o remount,rw / ; echo "mount rc=$?"
mount -o remount,bind,rw / ; echo "bind rc=$?"
touch /pwned-by-health; echo "touch rc=$?"`)
		matches, _ := filepath.Glob(filepath.Join(p.g.m.paths.versions("hp"), "*", "rootfs", "pwned-by-health"))
		if len(matches) > 0 {
			t.Errorf("the health command wrote %v into the rootfs on the host (it said %q)", matches, p.data("report"))
		}
		if r := p.data("report"); !strings.Contains(r, "mount rc=1") || !strings.Contains(r, "touch rc=1") {
			t.Errorf("health command reported %q, want every attempt refused", r)
		}
	})

	t.Run("within the memory limit", func(t *testing.T) {
		g := p.cgroup(t)
		before, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// 96 MiB in a shell variable, in a chute limited to 48 MiB.
		if err := p.run(t, `x=$(head -c 100663296 /dev/zero | tr '\0' x); echo survived ${#x} > /data/report`); err == nil {
			t.Error("the check passed")
		}
		if r := p.data("report"); strings.Contains(r, "survived") {
			t.Errorf("the health command held 96 MiB in a 48 MiB chute: %q", r)
		}
		after, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if after.OOMKills <= before.OOMKills {
			t.Errorf("no OOM kill in the chute's cgroup (%d before, %d after)", before.OOMKills, after.OOMKills)
		}
	})

	t.Run("within the pids limit", func(t *testing.T) {
		p.run(t, `i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); echo $i > /data/report; done`)
		n, err := strconv.Atoi(p.data("report"))
		if err != nil {
			t.Fatalf("health command reported %q", p.data("report"))
		}
		if n >= 24 {
			t.Errorf("the health command started %d processes in a chute limited to 24 tasks", n)
		}
	})
}

// TestHealthCommandBounded: a check's output does not reach the daemon's
// or the shim's memory, and a command past its timeout is killed in time.
func TestHealthCommandBounded(t *testing.T) {
	p := newHealthProbe(t)

	t.Run("400 MB of output", func(t *testing.T) {
		shimPid, err := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(p.g.m.paths.run("hp"), "shim.pid"))))
		if err != nil {
			t.Fatal(err)
		}
		shimBefore := fields(hostFile(t, shimPid, "status"))["VmHWM"]
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = p.run(t, `dd if=/dev/zero bs=1048576 count=400 2>/dev/null; echo done > /data/report`)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		if p.data("report") != "done" {
			t.Errorf("the health command did not get its 400 MB out: %q", p.data("report"))
		}
		t.Logf("one check of 400 MB: daemon allocated %d KiB; shim peak RSS %s before, %s after",
			(after.TotalAlloc-before.TotalAlloc)>>10, shimBefore, fields(hostFile(t, shimPid, "status"))["VmHWM"])
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("the daemon allocated %d MiB for one check", grew>>20)
		}
		if shimAfter := fields(hostFile(t, shimPid, "status"))["VmHWM"]; kib(t, shimAfter)-kib(t, shimBefore) > 2048 {
			t.Errorf("the shim's peak RSS grew from %s to %s", shimBefore, shimAfter)
		}
	})

	t.Run("past its timeout", func(t *testing.T) {
		t0 := time.Now()
		err := p.run(t, `echo $$ > /data/report; exec sleep 30`)
		if d := time.Since(t0); d > time.Duration(p.h.Timeout)+2*time.Second {
			t.Errorf("a check with a %s timeout took %s", time.Duration(p.h.Timeout), d)
		}
		if err == nil {
			t.Error("the check passed")
		}
		eventually(t, 5*time.Second, "the timed-out command to be gone", func() bool {
			for _, pid := range chuteProcs(t, p) {
				if strings.HasPrefix(readFileOrEmpty(fmt.Sprintf("/proc/%d/cmdline", pid)), "sleep\x0030") {
					return false
				}
			}
			return true
		})
	})
}

func (p *healthProbe) cgroup(t *testing.T) *cgroup.Group {
	t.Helper()
	g, err := cgroup.Load(p.g.m.paths.cgroup("hp"))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func chuteProcs(t *testing.T, p *healthProbe) []int {
	pids, err := p.cgroup(t).Procs()
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func kib(t *testing.T, v string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(v, " kB"))
	if err != nil {
		t.Fatalf("%q is not a size in kB", v)
	}
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFileOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestFailingHealthCommandRestarts: a chute whose health command fails is
// killed and restarted, and the new instance's door serves its checks.
func TestFailingHealthCommandRestarts(t *testing.T) {
	exe := sandboxtest.StaticExecutable(t)
	g := newGatewayWith(t, t.TempDir(), func(c *Config) { c.Executable = exe })
	defer g.removeAll()
	g.install(pkg(t, `
name: flaky
version: 1.0.0
command: ["/bin/sleep", "1000"]
health: {command: ["/bin/sh", "-c", "test ! -e /data/sick"], interval: 200ms, timeout: 1s, retries: 2}
restart: {policy: always}
`, nil))
	first, _ := g.m.Get("flaky")
	sick := filepath.Join(g.m.paths.data("flaky"), "sick")
	if err := os.WriteFile(sick, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a restart after failed health checks", func() bool {
		in, _ := g.m.Get("flaky")
		return in.Restarts >= 1 && in.State == Running && in.Pid != first.Pid
	})
	os.Remove(sick)
	e, err := g.m.entry("flaky")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a passing check of the restarted chute", func() bool {
		g.m.mu.Lock()
		sb, h := e.sb, e.rec.Manifest.Health
		g.m.mu.Unlock()
		return sb != nil && sb.Pid() != first.Pid && g.m.check(context.Background(), "flaky", sb, h) == nil
	})
}

// TestHealthCommandAfterDaemonRestart: a daemon that re-adopts a running
// chute checks it through the door its shim still holds.
func TestHealthCommandAfterDaemonRestart(t *testing.T) {
	p := newHealthProbe(t)
	dir, exe := p.g.dir, p.g.m.cfg.Executable
	p.g.shutdown()
	g := newGatewayWith(t, dir, func(c *Config) { c.Executable = exe })
	p.g = g // removed at the end by the new daemon
	e, err := g.m.entry("hp")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "re-adoption", func() bool {
		g.m.mu.Lock()
		defer g.m.mu.Unlock()
		return e.sb != nil && e.sb.Pid() == p.main
	})
	g.m.mu.Lock()
	p.sb = e.sb
	g.m.mu.Unlock()
	if err := p.run(t, "echo readopted > /data/report"); err != nil || p.data("report") != "readopted" {
		t.Errorf("check after the daemon restarted: %v, report %q", err, p.data("report"))
	}
}
