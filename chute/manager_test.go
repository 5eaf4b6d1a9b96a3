package chute

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/sandboxtest"
	"paradrop/examples"
	"paradrop/store"
)

// The test binary doubles as the chutes' shim and init, as the daemon's
// binary does.
func TestMain(m *testing.M) {
	sandboxtest.PlayRoles()
	code := m.Run()
	sandboxtest.RemoveStatic()
	os.Exit(code)
}

// testCgroupParent keeps this package's chutes apart from those of tests of
// other packages running at the same time: each daemon removes the groups
// under its parent that are not its own.
var testCgroupParent = fmt.Sprintf("/paradrop-test-%d", os.Getpid())

// gateway is a manager over a fresh data directory, run until the test ends.
type gateway struct {
	t    *testing.T
	dir  string
	db   *store.DB
	m    *Manager
	stop context.CancelFunc
	done chan struct{}
}

func newGateway(t *testing.T, dir string) *gateway {
	t.Helper()
	return newGatewayWith(t, dir, func(*Config) {})
}

// newGatewayWith is newGateway with the manager's configuration adjusted.
func newGatewayWith(t *testing.T, dir string, adjust func(*Config)) *gateway {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("chute manager tests need root (namespaces, cgroups, loop mounts)")
	}
	// t.TempDir's parent is 0700, as is a data directory under /root or
	// from mktemp -d: chutes must run all the same.
	if st, err := os.Stat(filepath.Dir(dir)); err != nil || st.Mode().Perm()&0o001 != 0 {
		t.Fatalf("the data directory's parent should not be searchable by chutes: %v, %v", st.Mode(), err)
	}
	db, err := store.Open(filepath.Join(dir, "paradrop.db"))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: dir, DB: db, Executable: exe, Logf: t.Logf, CgroupParent: testCgroupParent}
	adjust(&cfg)
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{t: t, dir: dir, db: db, m: m, stop: cancel, done: make(chan struct{})}
	go func() { m.Run(ctx); close(g.done) }()
	return g
}

// shutdown stops the daemon side only, as a daemon exit would: chutes keep
// running.
func (g *gateway) shutdown() {
	g.stop()
	<-g.done
	g.db.Close()
}

// removeAll removes every chute and shuts down; registered as cleanup.
func (g *gateway) removeAll() {
	for _, in := range g.m.List() {
		c := g.wait(g.m.Remove(in.Name, false, ""))
		if c.State != ChangeDone {
			g.t.Errorf("remove %s: %s", in.Name, c.Error)
		}
	}
	g.shutdown()
	if parent, err := cgroup.Load(testCgroupParent); err == nil {
		parent.Delete()
	}
}

func (g *gateway) wait(ch Change, err error) Change {
	g.t.Helper()
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := g.m.WaitChange(ctx, ch.ID)
	if err != nil {
		g.t.Fatalf("change %d: %v", ch.ID, err)
	}
	return c
}

func (g *gateway) mustDo(ch Change, err error) Change {
	g.t.Helper()
	c := g.wait(ch, err)
	if c.State != ChangeDone {
		g.t.Fatalf("%s %s: %s (steps %v)", c.Action, c.Chute, c.Error, c.Steps)
	}
	return c
}

func (g *gateway) install(pkg []byte) Change {
	g.t.Helper()
	return g.mustDo(g.m.Install(context.Background(), bytes.NewReader(pkg), Origin{}))
}

func pkg(t *testing.T, manifest string, files map[string]string) []byte {
	t.Helper()
	p, err := examples.Package(manifest, files)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// symlinkedPkg is a package whose rootfs has at name a symlink to target.
func symlinkedPkg(t *testing.T, name, target string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	man := []byte("name: linked\nversion: 1.0.0\ncommand: [/bin/true]\n")
	for _, h := range []*tar.Header{
		{Name: "chute.yaml", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(man))},
		{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "rootfs/" + name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(man)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			runtime.Goexit()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readData(g *gateway, name, file string) string {
	b, _ := os.ReadFile(filepath.Join(g.m.paths.data(name), file))
	return strings.TrimSpace(string(b))
}

const probeScript = `#!/bin/sh
# Records what the chute can see and do, then serves.
echo $$ > /data/pid
hostname > /data/hostname
ls /proc | grep -c "^[0-9]" > /data/nprocs
ls /host-marker-$1 > /data/marker 2>&1 && echo visible > /data/marker-result || echo hidden > /data/marker-result
touch /etc/x 2>/dev/null && echo yes > /data/write-root || echo no > /data/write-root
touch /tmp/x && echo yes > /data/write-tmp
id -u > /data/uid
exec sleep 1000
`

func TestInstallRunsIsolated(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	marker := "m" + strconv.Itoa(os.Getpid())
	os.WriteFile("/host-marker-"+marker, nil, 0o644)
	defer os.Remove("/host-marker-" + marker)

	g.install(pkg(t, fmt.Sprintf(`
name: probe
version: 1.0.0
command: ["/probe.sh", %q]
`, marker), map[string]string{"probe.sh": probeScript}))
	eventually(t, 10*time.Second, "probe results", func() bool { return readData(g, "probe", "uid") != "" })

	in, err := g.m.Get("probe")
	if err != nil || in.State != Running || in.Pid == 0 {
		t.Fatalf("info %+v, %v", in, err)
	}
	checks := map[string]string{
		"pid":           "1",     // its own PID namespace
		"hostname":      "probe", // its own UTS namespace
		"marker-result": "hidden",
		"write-root":    "no", // rootfs read-only
		"write-tmp":     "yes",
		"uid":           "0",
	}
	for file, want := range checks {
		if got := readData(g, "probe", file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// Only its own few processes are visible, not the host's hundreds.
	if n, err := strconv.Atoi(readData(g, "probe", "nprocs")); err != nil || n > 5 {
		t.Errorf("chute sees %q processes", readData(g, "probe", "nprocs"))
	}
	// Chute root is an unprivileged host uid.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.Pid))
	if !strings.Contains(string(status), fmt.Sprintf("Uid:\t%d", hostID(1))) {
		t.Errorf("chute root is not mapped to host uid %d:\n%s", hostID(1), status)
	}
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "net", "user", "cgroup"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", in.Pid, ns))
		if its == "" || mine == its {
			t.Errorf("chute shares the host's %s namespace (%q)", ns, its)
		}
	}
}

func TestMemoryHogKilledInsideItsCgroup(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, `
name: hog
version: 1.0.0
command: ["/bin/sh", "-c", "sleep 0.5; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
resources: {memory: 16Mi}
restart: {policy: "no"}
`, nil))
	eventually(t, 20*time.Second, "hog to be killed", func() bool {
		in, _ := g.m.Get("hog")
		return in.State == Failed
	})
	in, _ := g.m.Get("hog")
	if !strings.Contains(in.LastExit, "killed") && !strings.Contains(in.LastExit, "137") {
		t.Errorf("last exit %q: want killed by the OOM killer", in.LastExit)
	}
	if g, err := cgroup.Load(g.m.paths.cgroup("hog")); err == nil {
		if st, err := g.Stats(); err == nil && st.OOMKills == 0 {
			t.Errorf("no OOM kill counted in the chute's cgroup: %+v", st)
		}
	}
}

func TestForkBombStopsAtPidsLimit(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, `
name: bomb
version: 1.0.0
command: ["/bin/sh", "-c", "sh -c 'i=0; while [ $i -lt 100 ]; do sleep 1000 & i=$((i+1)); done'; echo done > /data/tried; exec sleep 1000"]
resources: {pids: 12}
`, nil))
	eventually(t, 15*time.Second, "the loop to finish", func() bool { return readData(g, "bomb", "tried") != "" })
	cg, err := cgroup.Load(g.m.paths.cgroup("bomb"))
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := cg.Procs()
	if len(procs) > 12 || len(procs) < 5 {
		t.Errorf("%d processes in the chute's cgroup, want between 5 and the limit 12", len(procs))
	}
	in, _ := g.m.Get("bomb")
	if in.State != Running {
		t.Errorf("state %s", in.State)
	}
}

const counterV1 = `
name: counter
version: 1.0.0
command: ["/bin/sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); echo $((n+1)) > /data/n; echo v1 > /data/version; exec sleep 1000"]
update: {stable_for: 1s}
`

func TestDataSurvivesUpdateAndRestart(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, counterV1, nil))
	eventually(t, 10*time.Second, "first run", func() bool { return readData(g, "counter", "n") == "1" })
	g.mustDo(g.m.Restart("counter", ""))
	eventually(t, 10*time.Second, "second run", func() bool { return readData(g, "counter", "n") == "2" })

	v2 := strings.Replace(strings.Replace(counterV1, "1.0.0", "1.1.0", 1), "echo v1", "echo v2", 1)
	c := g.mustDo(g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v2, nil)), false, Origin{}))
	eventually(t, 10*time.Second, "v2 run", func() bool { return readData(g, "counter", "version") == "v2" })
	if n := readData(g, "counter", "n"); n != "3" {
		t.Errorf("/data/n = %q after update, want 3: data lost (steps %v)", n, c.Steps)
	}
	if in, _ := g.m.Get("counter"); in.Version != "1.1.0" || in.State != Running {
		t.Errorf("after update: %+v", in)
	}
	// Same version again needs force.
	_, err := g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, v2, nil)), false, Origin{})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("update to the same version: %v, want ErrConflict", err)
	}
}

func TestBrokenUpdateRollsBack(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, counterV1, nil))
	eventually(t, 10*time.Second, "first run", func() bool { return readData(g, "counter", "n") == "1" })
	before, _ := g.m.Get("counter")

	broken := strings.Replace(counterV1, "1.0.0", "2.0.0", 1)
	broken = strings.Replace(broken, "exec sleep 1000", "exit 3", 1)
	c := g.wait(g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, broken, nil)), false, Origin{}))
	if c.State != ChangeError || !strings.Contains(c.Error, "rolled back") {
		t.Fatalf("broken update: state %s, error %q", c.State, c.Error)
	}
	after, _ := g.m.Get("counter")
	if after.Version != "1.0.0" || after.State != Running || after.Pid == 0 || after.Pid == before.Pid {
		t.Errorf("after rollback %+v (before pid %d)", after, before.Pid)
	}
	eventually(t, 10*time.Second, "/data/n = 3 (v1, broken v2, v1 again)", func() bool { return readData(g, "counter", "n") == "3" })
	vers, _ := os.ReadDir(g.m.paths.versions("counter"))
	if len(vers) != 1 {
		t.Errorf("%d version directories left, want 1", len(vers))
	}
}

func TestDaemonRestartReadoptsAndRebootRestarts(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, dir)
	g.install(pkg(t, counterV1, nil))
	in, _ := g.m.Get("counter")
	g.shutdown() // the daemon goes away; the chute must not

	if err := syscall.Kill(in.Pid, 0); err != nil {
		t.Fatalf("chute died with the daemon: %v", err)
	}
	g = newGateway(t, dir)
	defer func() { g.removeAll() }()
	eventually(t, 10*time.Second, "re-adoption", func() bool {
		got, _ := g.m.Get("counter")
		return got.State == Running && got.Pid == in.Pid
	})

	// A reboot: every process and mount is gone, only the data dir stays.
	g.shutdown()
	sb, err := sandbox.Attach(context.Background(), g.m.paths.run("counter"))
	if err != nil {
		t.Fatal(err)
	}
	sb.Stop(context.Background(), 0)
	cg, _ := cgroup.Load(g.m.paths.cgroup("counter"))
	if err := cg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(g.m.paths.data("counter"), 0); err != nil {
		t.Fatalf("unmount /data as a reboot would: %v", err)
	}
	// After a reboot nothing holds /data's image. Here the killed chute's
	// mount namespace may still, for a while under load: cgroup.procs no
	// longer lists a process whose threads are all exiting, and its
	// namespaces go after that. (So may, for the length of their start,
	// the shims of chutes started meanwhile on this machine.)
	waitReleased(t, g.m.paths.dataImage("counter"), 10*time.Second, "the simulated reboot")

	g = newGateway(t, dir)
	booted := time.Now()
	eventually(t, 15*time.Second, "restart after reboot", func() bool {
		got, _ := g.m.Get("counter")
		if got.State == Failed {
			t.Fatalf("restart after reboot failed: %s", got.Error)
		}
		return got.State == Running && got.Pid != in.Pid && got.Pid != 0
	})
	t.Logf("running again %s after the reboot", time.Since(booted).Round(time.Millisecond))
	eventually(t, 10*time.Second, "/data/n = 2 after the reboot", func() bool {
		n := readData(g, "counter", "n")
		t.Logf("n=%q", n)
		return n == "2"
	})
}

func TestBadInstallsLeaveNothing(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	cases := []struct {
		name     string
		manifest string
		want     error
	}{
		{"unknown key", "name: a\nversion: 1.0.0\ncommand: [/bin/true]\nbogus: 1\n", ErrInvalid},
		{"bad version", "name: a\nversion: one\ncommand: [/bin/true]\n", ErrInvalid},
		{"bad name", "name: A_B\nversion: 1.0.0\ncommand: [/bin/true]\n", ErrInvalid},
		// Valid by the manifest's rules, refused by the kernel at start.
		{"cpu_max below the kernel's minimum", "name: a\nversion: 1.0.0\ncommand: [/bin/true]\nresources: {cpu_max: 1e-9}\n", ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := g.m.Install(context.Background(), bytes.NewReader(pkg(t, c.manifest, nil)), Origin{})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("not an archive", func(t *testing.T) {
		_, err := g.m.Install(context.Background(), strings.NewReader("hello"), Origin{})
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("command missing: install rolled back", func(t *testing.T) {
		c := g.wait(g.m.Install(context.Background(), bytes.NewReader(pkg(t, "name: nocmd\nversion: 1.0.0\ncommand: [/nope]\n", nil)), Origin{}))
		if c.State != ChangeError || !strings.Contains(c.Error, "/nope") {
			t.Fatalf("change %+v", c)
		}
		if _, err := g.m.Get("nocmd"); !errors.Is(err, ErrNotFound) {
			t.Errorf("half-installed chute left: %v", err)
		}
		if _, err := os.Stat(g.m.paths.chute("nocmd")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("chute directory left: %v", err)
		}
	})
	// The shim and init mount over these in the chute's rootfs, by path,
	// as host root (/sys) or before pivot_root, where an absolute
	// symlink means the host's tree: only a real directory is taken.
	for _, mp := range mountpoints {
		t.Run("rootfs/"+mp+" a symlink", func(t *testing.T) {
			_, err := g.m.Install(context.Background(), bytes.NewReader(symlinkedPkg(t, mp, "/tmp")), Origin{})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "rootfs/"+mp+" must be a directory") {
				t.Fatalf("err = %v, want ErrInvalid naming rootfs/%s", err, mp)
			}
		})
	}
	t.Run("duplicate name", func(t *testing.T) {
		g.install(pkg(t, counterV1, nil))
		_, err := g.m.Install(context.Background(), bytes.NewReader(pkg(t, counterV1, nil)), Origin{})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v", err)
		}
	})
	if ents, _ := os.ReadDir(g.m.paths.staging()); len(ents) != 0 {
		t.Errorf("staging not empty: %v", ents)
	}
}

func TestLogsTailAndFollow(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, `
name: talker
version: 1.0.0
command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.1; done"]
`, nil))
	eventually(t, 10*time.Second, "a few lines", func() bool {
		var b bytes.Buffer
		g.m.Logs(context.Background(), "talker", "", 0, false, &b)
		return strings.Count(b.String(), "\n") >= 5
	})
	var b bytes.Buffer
	if err := g.m.Logs(context.Background(), "talker", "", 2, false, &b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 2 || !strings.Contains(b.String(), "stdout line") {
		t.Errorf("tail=2 gave %d lines: %q", n, b.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var f bytes.Buffer
	g.m.Logs(ctx, "talker", "", 1, true, &f)
	if n := strings.Count(f.String(), "\n"); n < 5 {
		t.Errorf("follow for 1.5 s gave %d lines, want new lines as they come: %q", n, f.String())
	}
}

func TestFailingHealthCheckRestarts(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	// Nothing listens on port 80: every check fails.
	g.install(pkg(t, `
name: sick
version: 1.0.0
command: ["/bin/sleep", "1000"]
health: {http: {port: 80, path: /}, interval: 200ms, timeout: 200ms, retries: 2}
restart: {policy: always}
`, nil))
	first, _ := g.m.Get("sick")
	eventually(t, 20*time.Second, "a restart after failed health checks", func() bool {
		in, _ := g.m.Get("sick")
		return in.Restarts >= 1 && in.State == Running && in.Pid != first.Pid
	})
}

func TestStartupRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"staging/upload-junk/rootfs", "chutes/ghost/versions/1.0.0-9/rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ghost, err := cgroup.Open(testCgroupParent+"/ghost", cgroup.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	if err := ghost.Add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}

	g := newGateway(t, dir)
	defer g.removeAll()
	eventually(t, 10*time.Second, "leftovers to go", func() bool {
		_, errStaging := os.Stat(filepath.Join(dir, "staging/upload-junk"))
		_, errChute := os.Stat(filepath.Join(dir, "chutes/ghost"))
		_, errGroup := cgroup.Load(testCgroupParent + "/ghost")
		return os.IsNotExist(errStaging) && os.IsNotExist(errChute) && errors.Is(errGroup, cgroup.ErrNotExist)
	})
	if err := sleeper.Wait(); err == nil {
		t.Error("the process in the leftover cgroup was not killed")
	}
}

// A manager without a cgroup parent is refused rather than given the
// gateway's (/paradrop), whose stray groups its start-up would remove: a
// test that forgot to name its own would kill a running gateway's chutes.
func TestManagerNeedsCgroupParent(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "paradrop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = NewManager(Config{DataDir: dir, DB: db, Executable: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "CgroupParent") {
		t.Fatalf("NewManager without CgroupParent: %v", err)
	}
}

// A start through the manager waits for the store only where a crash
// would otherwise lose what was asked: the change when queued, the chute's
// record before its launch (desired state and starting in one write) and
// after it, and the change when it ends. The change's progress, which made
// a start wait for three more commits (two fdatasyncs each, 3-14 ms p90
// under load), two of them before the chute's command ran, is not
// written while the change runs; the ended change is stored whole.
func TestStartCommitsOnlyWhatACrashNeeds(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	g.install(pkg(t, fmt.Sprintf(sleeper, "quick"), nil))
	g.mustDo(g.m.Stop("quick", ""))
	before := g.db.Commits()
	c := g.mustDo(g.m.Start("quick", ""))
	if got := g.db.Commits() - before; got != 4 {
		t.Errorf("a start committed %d writes to the store, want 4 (change queued, record starting, record running, change ended)", got)
	}
	var stored Change
	if err := g.db.Get(store.Changes, store.IDKey(c.ID), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.State != ChangeDone || len(stored.Steps) != len(c.Steps) || len(c.Steps) == 0 {
		t.Errorf("the stored change is not the ended one: %+v, ended %+v", stored, c)
	}
	if in, _ := g.m.Get("quick"); in.State != Running || in.Desired != Running {
		t.Errorf("after the start: %+v", in)
	}
	var rec record
	if err := g.db.Get(store.Chutes, "quick", &rec); err != nil || rec.State != Running || rec.Desired != Running {
		t.Errorf("the stored record after the start: state %s desired %s, %v", rec.State, rec.Desired, err)
	}
}
