package sandbox_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/sandboxtest"
	"paradrop/netconf/nettest"
)

// daemonCommand runs the test binary as a stand-in daemon that starts a
// chute and then blocks, to be killed by the test.
const daemonCommand = "__test_daemon"

func TestMain(m *testing.M) {
	sandboxtest.PlayRoles()
	if len(os.Args) > 1 && os.Args[1] == probeCommand {
		os.Exit(probe(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == daemonCommand {
		os.Exit(fakeDaemon(os.Args[2:]))
	}
	code := m.Run()
	sandboxtest.RemoveStatic()
	os.Exit(code)
}

// fakeDaemon reads a Spec on stdin, starts it, prints the chute's pid and
// waits to be killed. With the argument "warm" it starts the chute under a
// Launcher's monitor (run directory: monitorRunDir), and prints the pid of
// that monitor before the chute's. With "hog" it first protects itself
// from the OOM killer as serve does and holds daemonHeld bytes.
func fakeDaemon(args []string) int {
	var s sandbox.Spec
	if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if slices.Contains(args, "hog") {
		if err := holdMemoryAsDaemon(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	start := sandbox.Start
	if slices.Contains(args, "warm") {
		l := sandbox.NewLauncher(s.Executable, monitorRunDir(s), nil)
		pid, err := l.MonitorPid(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(pid)
		start = l.Start
	}
	c, err := start(ctx, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(c.Pid())
	// Not select{}: with nothing else left to run, the runtime would
	// call that a deadlock and end the daemon.
	for {
		time.Sleep(time.Hour)
	}
}

// monitorRunDir is the run directory of the monitors of the chute of s,
// beside its state directory.
func monitorRunDir(s sandbox.Spec) string {
	return filepath.Join(filepath.Dir(s.StateDir), "monitor")
}

const hostIDBase = 200000

// newSpec returns a spec for a chute running script under busybox sh, with
// a fresh rootfs, data, policy, log and state directory.
func newSpec(t testing.TB, name, script string) sandbox.Spec {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("chute tests need root")
	}
	// t.TempDir and its parent are 0700: the chute's host ids cannot
	// search them, which the sandbox must not need.
	base := t.TempDir()
	s := sandbox.Spec{
		Name:        name,
		Rootfs:      filepath.Join(base, "rootfs"),
		DataDir:     filepath.Join(base, "data"),
		PolicyDir:   filepath.Join(base, "policy"),
		Args:        []string{"/bin/sh", "-c", script},
		UserNS:      true,
		HostUID:     hostIDBase,
		HostGID:     hostIDBase,
		LogDir:      filepath.Join(base, "logs"),
		StateDir:    filepath.Join(base, "state"),
		LogMaxBytes: 1 << 20,
	}
	sandboxtest.BusyboxRootfs(t, s.Rootfs)
	for _, d := range []string{s.DataDir, s.PolicyDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(s.DataDir, hostIDBase, hostIDBase); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.PolicyDir, "policy.json"), []byte(`{"ok":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T, s sandbox.Spec) *sandbox.Chute {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sandbox.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c.Signal(syscall.SIGKILL)
		wait(t, c)
	})
	return c
}

// shimPID is the pid of the shim of the chute started with s, from the
// file the shim keeps in the chute's state directory.
func shimPID(t *testing.T, s sandbox.Spec) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.StateDir, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func wait(t *testing.T, c *sandbox.Chute) sandbox.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

// runScript runs script in a chute to its end and returns its exit status
// and its output lines, stream prefix kept ("stdout x", "stderr y").
func runScript(t *testing.T, s sandbox.Spec) (sandbox.ExitStatus, []string) {
	t.Helper()
	st := wait(t, start(t, s))
	return st, logLines(t, s.LogDir)
}

func logLines(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "current.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ts, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("log line without timestamp: %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("log line with a bad timestamp: %q", sc.Text())
		}
		lines = append(lines, rest)
	}
	return lines
}

// TestIsolation runs one chute per check; each prints what the chute sees
// and the check judges it.
func TestIsolation(t *testing.T) {
	marker, err := os.CreateTemp("/tmp", "host-marker-")
	if err != nil {
		t.Fatal(err)
	}
	marker.Close()
	defer os.Remove(marker.Name())

	tests := []struct {
		name    string
		script  string
		want    []string // exact stdout lines, in order
		check   func(t *testing.T, s sandbox.Spec, out []string)
		hostIDs bool // run without a user namespace
	}{
		{name: "pid1", script: `echo $$; readlink /proc/self`, want: []string{"1", "1"}},
		{name: "ps shows only the chute", script: `sleep 100 & sleep 0.2; ps -o pid,comm; true`,
			check: func(t *testing.T, _ sandbox.Spec, out []string) {
				want := map[string]bool{"1 sh": true, "sleep": true, "ps": true}
				for _, l := range out[1:] {
					f := strings.Fields(l)
					pid, _ := strconv.Atoi(f[0])
					if len(f) != 2 || pid < 1 || pid > 10 || (f[1] != "sh" && f[1] != "sleep" && f[1] != "ps") {
						t.Errorf("ps shows a process that is not the chute's: %q", l)
					}
					delete(want, f[1])
					delete(want, f[0]+" "+f[1])
				}
				if len(out) > 5 || len(want) > 0 {
					t.Errorf("ps output %q: want pid 1 sh, its sleep and ps, nothing else", out)
				}
			}},
		{name: "hostname", script: `hostname; uname -n`, want: []string{"isolation", "isolation"}},
		{name: "host files invisible", script: `test -e ` + marker.Name() + ` && echo visible || echo hidden; ls /`,
			want: []string{"hidden", "bin", "data", "dev", "etc", "mnt", "paradrop", "proc", "root", "sbin", "sys", "tmp", "usr"}},
		{name: "root read-only", script: `touch /newfile 2>&1; echo rc=$?; touch /bin/x 2>&1; echo rc=$?`,
			want: []string{"touch: /newfile: Read-only file system", "rc=1", "touch: /bin/x: Read-only file system", "rc=1"}},
		{name: "tmp writable", script: `echo tmpdata > /tmp/f && cat /tmp/f; stat -c %a /tmp; grep ' /tmp ' /proc/mounts | grep -o 'nosuid,nodev'`,
			want: []string{"tmpdata", "1777", "nosuid,nodev"}},
		{name: "data writable and on host", script: `echo payload > /data/out && echo ok`, want: []string{"ok"},
			check: func(t *testing.T, s sandbox.Spec, _ []string) {
				path := filepath.Join(s.DataDir, "out")
				b, err := os.ReadFile(path)
				if err != nil || string(b) != "payload\n" {
					t.Fatalf("host %s: %q, %v", path, b, err)
				}
				var st syscall.Stat_t
				if err := syscall.Stat(path, &st); err != nil || st.Uid != hostIDBase {
					t.Fatalf("host owner of %s: uid %d (%v), want %d", path, st.Uid, err, hostIDBase)
				}
			}},
		{name: "policy read-only", script: `cat /paradrop/policy.json; echo; touch /paradrop/x 2>&1; echo rc=$?`,
			want: []string{`{"ok":true}`, "touch: /paradrop/x: Read-only file system", "rc=1"}},
		{name: "ids", script: `id -u; id -g; cat /proc/self/uid_map`,
			want: []string{"0", "0", fmt.Sprintf("         0     %d      65536", hostIDBase)}},
		{name: "capabilities", script: `grep -E '^Cap' /proc/self/status`,
			want: []string{"CapInh:\t0000000000000000", "CapPrm:\t00000000200405fb", "CapEff:\t00000000200405fb",
				"CapBnd:\t00000000200405fb", "CapAmb:\t0000000000000000"}},
		{name: "seccomp and no_new_privs", script: `grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status`,
			want: []string{"NoNewPrivs:\t1", "Seccomp:\t2"}},
		{name: "new user namespace denied", script: `unshare -U true 2>&1; echo rc=$?; unshare -n true 2>&1; echo rc=$?`,
			want: []string{"unshare: unshare(0x10000000): Operation not permitted", "rc=1",
				"unshare: unshare(0x40000000): Operation not permitted", "rc=1"}},
		{name: "mount denied", script: `mount -t tmpfs none /mnt 2>&1; echo rc=$?`,
			want: []string{"mount: permission denied (are you root?)", "rc=1"}},
		{name: "loopback-only network", script: `ls /sys/class/net; cat /sys/class/net/lo/flags; ip -o link | cut -d' ' -f2`,
			want: []string{"lo", "0x9", "lo:"}},
		{name: "dev", script: `ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c; ls /dev/pts; readlink /dev/fd`,
			want: []string{"fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
				"4", "ptmx", "/proc/self/fd"}},
		{name: "masked and read-only proc and sys", script: `wc -c < /proc/timer_list; wc -c < /proc/swaps; ls /sys; (echo 1 > /proc/sys/vm/drop_caches) 2>&1; echo rc=$?; touch /sys/x 2>&1; grep -c '^tmpfs /sys tmpfs ro' /proc/mounts`,
			want: []string{"0", "0", "class", "devices", "/bin/sh: can't create /proc/sys/vm/drop_caches: Read-only file system", "rc=1",
				"touch: /sys/x: Read-only file system", "1"}},
		{name: "no user namespace: host root, still confined", hostIDs: true,
			script: `cat /proc/self/uid_map; grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status; touch /x 2>&1; hostname`,
			want: []string{"         0          0 4294967295", "CapEff:\t00000000200405fb", "CapBnd:\t00000000200405fb",
				"Seccomp:\t2", "touch: /x: Read-only file system", "isolation"}},
		{name: "environment and limits", script: `echo $HOME $HOSTNAME $PATH $FOO; ulimit -n; ulimit -c; pwd`,
			want: []string{"/root isolation " + sandbox.DefaultPath + " bar", "1024", "0", "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpec(t, "isolation", tt.script)
			s.Env = []string{"FOO=bar"}
			s.UserNS = !tt.hostIDs
			st, lines := runScript(t, s)
			var out []string
			for _, l := range lines {
				if text, ok := strings.CutPrefix(l, "stdout "); ok {
					out = append(out, text)
				} else {
					t.Errorf("unexpected output: %q", l)
				}
			}
			if st.Code != 0 && tt.check == nil && !strings.Contains(tt.script, "rc=") {
				t.Errorf("exit status %+v", st)
			}
			if tt.want != nil && strings.Join(out, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("chute printed\n%s\nwant\n%s", strings.Join(out, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.check != nil {
				tt.check(t, s, out)
			}
		})
	}
}

// procStatus returns the fields of /proc/PID/status on the host.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestChuteUserIDs: a chute run as a user other than root has that user's
// ids as all of its real, effective, saved and filesystem ids, and no
// supplementary group: init sets them on the thread that execs only.
func TestChuteUserIDs(t *testing.T) {
	s := newSpec(t, "userids", "")
	s.Args = []string{"sleep", "1000"}
	s.UID, s.GID = 1000, 1001
	c := start(t, s)
	st := procStatus(t, c.Pid())
	for k, id := range map[string]int{"Uid": hostIDBase + 1000, "Gid": hostIDBase + 1001} {
		want := strings.Repeat(strconv.Itoa(id)+" ", 4)
		if got := strings.Join(strings.Fields(st[k]), " ") + " "; got != want {
			t.Errorf("%s of the chute: %q, want %q", k, st[k], want)
		}
	}
	if st["Groups"] != "" {
		t.Errorf("supplementary groups of the chute: %q, want none", st["Groups"])
	}
}

func TestHostViewAndStop(t *testing.T) {
	s := newSpec(t, "hostview", "")
	s.Args = []string{"sleep", "1000"}
	c := start(t, s)
	st := procStatus(t, c.Pid())
	if uid := strings.Fields(st["Uid"]); len(uid) == 0 || uid[0] != strconv.Itoa(hostIDBase) {
		t.Errorf("host Uid of the chute: %q, want %d", st["Uid"], hostIDBase)
	}
	if ns := st["NSpid"]; ns != fmt.Sprintf("%d\t1", c.Pid()) {
		t.Errorf("NSpid %q: the chute is not pid 1 of its own pid namespace", ns)
	}
	if st["Name"] != "sleep" {
		t.Errorf("pid %d runs %q, want sleep", c.Pid(), st["Name"])
	}
	if time.Since(c.StartedAt()) > time.Minute || c.StartedAt().After(time.Now()) {
		t.Errorf("StartedAt %v", c.StartedAt())
	}

	// sleep as pid 1 has no SIGTERM handler, so SIGTERM cannot reach it:
	// Stop kills it at once instead of sitting out the grace period.
	const grace = 3 * time.Second
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exit, err := c.Stop(ctx, grace)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(t0); d >= grace {
		t.Errorf("Stop took %v: it waited the grace period for a pid 1 that cannot get SIGTERM", d)
	}
	if exit.Signal != "killed" || exit.Code != 137 {
		t.Errorf("exit status %+v, want killed", exit)
	}
	if err := syscall.Kill(c.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid %d still exists after Stop: %v", c.Pid(), err)
	}
	if err := c.Signal(syscall.SIGTERM); !errors.Is(err, sandbox.ErrNotRunning) {
		t.Errorf("Signal after exit: %v, want ErrNotRunning", err)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		signal syscall.Signal // sent once started
		want   sandbox.ExitStatus
	}{
		{name: "exit 0", script: "exit 0", want: sandbox.ExitStatus{Code: 0}},
		{name: "exit 3", script: "exit 3", want: sandbox.ExitStatus{Code: 3}},
		{name: "killed", script: "while true; do sleep 1; done", signal: syscall.SIGKILL,
			want: sandbox.ExitStatus{Code: 137, Signal: "killed"}},
		{name: "handled SIGTERM", script: "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done", signal: syscall.SIGTERM,
			want: sandbox.ExitStatus{Code: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpec(t, "exits", tt.script)
			c := start(t, s)
			if tt.signal != 0 {
				waitForLog(t, s.LogDir, "")
				if err := c.Signal(tt.signal); err != nil {
					t.Fatalf("Signal: %v", err)
				}
			}
			st := wait(t, c)
			if st.Code != tt.want.Code || st.Signal != tt.want.Signal {
				t.Errorf("exit status %+v, want %+v", st, tt.want)
			}
			if time.Since(st.At) > time.Minute {
				t.Errorf("exit time %v", st.At)
			}
		})
	}
}

// TestStopGivesAHandlerItsGrace: a pid 1 that catches SIGTERM gets the
// whole grace period to act on it before the SIGKILL.
func TestStopGivesAHandlerItsGrace(t *testing.T) {
	s := newSpec(t, "stubborn", "trap 'echo not yet' TERM; echo ready; while true; do sleep 0.1; done")
	c := start(t, s)
	waitForLog(t, s.LogDir, "ready")
	const grace = 700 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	exit, err := c.Stop(ctx, grace)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(t0); d < grace || d > grace+5*time.Second {
		t.Errorf("Stop took %v, want about the grace %v", d, grace)
	}
	if exit.Signal != "killed" {
		t.Errorf("exit status %+v, want killed after the grace", exit)
	}
	waitForLog(t, s.LogDir, "not yet")
}

// waitForLog waits until the chute's current.log contains substr (or
// anything, for "") and shows a shell ready for signals.
func waitForLog(t *testing.T, dir, substr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "current.log"))
		if substr == "" || strings.Contains(string(b), substr) {
			time.Sleep(200 * time.Millisecond) // the shell may still be setting its traps
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%q never appeared in the chute's log", substr)
}

// TestPrivateAncestors starts chutes whose rootfs, data and policy lie
// under a directory of mode 0700, as a data directory under /root or from
// mktemp -d does: the chute's root user may not search it, yet the chute
// runs and reads and writes its /data.
func TestPrivateAncestors(t *testing.T) {
	for _, how := range starters(t) {
		t.Run(how.name, func(t *testing.T) {
			s := newSpec(t, "private", `cat /paradrop/policy.json; echo; echo from-chute > /data/out; ls /data`)
			private := filepath.Dir(s.Rootfs)
			if err := os.Chmod(private, 0o700); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := how.start(t, ctx, s)
			if err != nil {
				t.Fatalf("start under a 0700 directory: %v", err)
			}
			if st := wait(t, c); st.Code != 0 {
				t.Fatalf("exit status %+v, log %q", st, logLines(t, s.LogDir))
			}
			if got, want := logLines(t, s.LogDir), []string{`stdout {"ok":true}`, "stdout out"}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("chute output %q, want %q", got, want)
			}
			if b, err := os.ReadFile(filepath.Join(s.DataDir, "out")); err != nil || string(b) != "from-chute\n" {
				t.Errorf("the chute's /data/out on the host: %q, %v", b, err)
			}
		})
	}
}

// TestNoMountReachesTheHost starts a chute whose directories lie on a
// shared mount, as every mount is on a host run by systemd: the trees the
// shim clones from it are its peers, and the chute's mounts (proc, dev,
// tmp...) must not propagate back to the host through them.
func TestNoMountReachesTheHost(t *testing.T) {
	s := newSpec(t, "shared", `cat /paradrop/policy.json; echo`)
	base := filepath.Dir(s.Rootfs)
	if err := syscall.Mount(base, base, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(base, syscall.MNT_DETACH) })
	if err := syscall.Mount("", base, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if st, lines := runScript(t, s); st.Code != 0 || len(lines) != 1 {
		t.Fatalf("exit status %+v, output %q", st, lines)
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(info), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], base+"/") {
			t.Errorf("a chute's mount reached the host: %s", l)
		}
	}
}

// TestSymlinkedMountpoints: a rootfs whose proc, dev, sys, tmp, data or
// paradrop is a symlink, out of its root or into it, is refused: the shim
// mounts the chute's /sys as host root, init the others before
// pivot_root, where an absolute symlink names the host's tree. Nothing
// of the host's is mounted over or written.
func TestSymlinkedMountpoints(t *testing.T) {
	// Searchable by the chute's ids, so that only the symlink decides.
	victim, err := os.MkdirTemp("", "paradrop-victim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(victim) })
	if err := os.Chmod(victim, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, mp := range []string{"proc", "dev", "sys", "tmp", "data", "paradrop"} {
		for _, target := range []string{victim, "decoy", "../../../../../../.." + victim} {
			t.Run(mp+"->"+target, func(t *testing.T) {
				s := newSpec(t, "linked", "true")
				link := filepath.Join(s.Rootfs, mp)
				if err := os.Mkdir(filepath.Join(s.Rootfs, "decoy"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(link); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				c, err := sandbox.Start(context.Background(), s)
				if err == nil {
					st := wait(t, c)
					t.Errorf("chute with /%s a symlink to %s started (exit %+v)", mp, target, st)
				} else if want := "/" + mp + " is not a directory"; !strings.Contains(err.Error(), want) {
					t.Errorf("Start: %v, want %q", err, want)
				}
				if ents, err := os.ReadDir(victim); err != nil || len(ents) != 0 {
					t.Errorf("the host's %s now holds %v (%v)", victim, ents, err)
				}
				if ents, err := os.ReadDir(filepath.Join(s.Rootfs, "decoy")); err != nil || len(ents) != 0 {
					t.Errorf("the rootfs's /decoy now holds %v (%v)", ents, err)
				}
				noHostMountAt(t, victim)
			})
		}
	}
}

// noHostMountAt fails t if the host has a mount at or under dir.
func noHostMountAt(t *testing.T, dir string) {
	t.Helper()
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(info), dir) {
		t.Errorf("a mount reached the host's %s", dir)
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(s *sandbox.Spec)
		wantErr string
	}{
		{name: "missing command", mod: func(s *sandbox.Spec) { s.Args = []string{"/bin/httpd-missing"} },
			wantErr: `start chute "errs": exec "/bin/httpd-missing": no such file or directory`},
		{name: "command not in PATH", mod: func(s *sandbox.Spec) { s.Args = []string{"nosuchcmd"} },
			wantErr: `start chute "errs": exec "nosuchcmd": executable file not found in $PATH`},
		{name: "bad cwd", mod: func(s *sandbox.Spec) { s.Cwd = "/nowhere" },
			wantErr: `start chute "errs": chdir /nowhere: no such file or directory`},
		{name: "no rootfs", mod: func(s *sandbox.Spec) { s.Rootfs = "" },
			wantErr: `start chute "errs": spec: Rootfs is required`},
		{name: "missing cgroup", mod: func(s *sandbox.Spec) { s.CgroupPath = "/paradrop-test/does-not-exist" },
			wantErr: `start chute "errs": load cgroup "/paradrop-test/does-not-exist"`},
	}
	for _, how := range starters(t) {
		for _, tt := range tests {
			t.Run(how.name+"/"+tt.name, func(t *testing.T) {
				s := newSpec(t, "errs", "true")
				tt.mod(&s)
				c, err := how.start(t, context.Background(), s)
				if err == nil {
					wait(t, c)
					t.Fatalf("Start succeeded, want %q", tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Start: %v\nwant: %s", err, tt.wantErr)
				}
				if s.StateDir != "" {
					if _, err := sandbox.Attach(context.Background(), s.StateDir); !errors.Is(err, sandbox.ErrNoShim) {
						t.Errorf("Attach after a failed start: %v, want ErrNoShim", err)
					}
				}
			})
		}
	}
}

func TestLogRotationBound(t *testing.T) {
	// 10 MiB of output, from both streams, through a 64 KiB x 3 log.
	s := newSpec(t, "logs", `echo first; echo to-stderr >&2; head -c 10485760 /dev/zero | tr '\0' x | fold -w 100; echo; echo last`)
	s.LogMaxBytes = 64 << 10
	s.LogFiles = 3
	st, _ := runScript(t, s)
	if st.Code != 0 {
		t.Fatalf("exit status %+v", st)
	}
	ents, err := os.ReadDir(s.LogDir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	var names []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > s.LogMaxBytes {
			t.Errorf("%s is %d bytes, over %d", e.Name(), info.Size(), s.LogMaxBytes)
		}
		total += info.Size()
		names = append(names, e.Name())
	}
	if want := "current.log current.log.1 current.log.2"; strings.Join(names, " ") != want {
		t.Errorf("log files %v, want %s", names, want)
	}
	if max := int64(s.LogFiles) * s.LogMaxBytes; total > max {
		t.Errorf("%d bytes of logs on disk, bound is %d", total, max)
	}
	lines := logLines(t, s.LogDir)
	if last := lines[len(lines)-1]; last != "stdout last" {
		t.Errorf("last log line %q, want the chute's last output", last)
	}
	if want := "stdout " + strings.Repeat("x", 100); lines[0] != want {
		t.Errorf("log line %q, want %q", lines[0], want)
	}
}

func TestLogStreams(t *testing.T) {
	s := newSpec(t, "streams", `echo out1; echo err1 >&2; printf 'no newline'`)
	_, lines := runScript(t, s)
	want := map[string]bool{"stdout out1": true, "stderr err1": true, "stdout no newline": true}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("unexpected log line %q", l)
		}
		delete(want, l)
	}
	if len(want) > 0 {
		t.Errorf("missing log lines %v", want)
	}
}

// startFromDaemon starts s from a separate process, as the daemon would,
// and kills that process with SIGKILL once the chute runs.
func startFromDaemon(t *testing.T, s sandbox.Spec) int {
	t.Helper()
	return fromFakeDaemon(t, s, 1)[0]
}

// fromFakeDaemon runs fakeDaemon with args, reads the n pids it prints and
// kills it with SIGKILL.
func fromFakeDaemon(t *testing.T, s sandbox.Spec, n int, args ...string) []int {
	t.Helper()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(self, append([]string{daemonCommand}, args...)...)
	daemon.Stdin = strings.NewReader(string(spec))
	daemon.Stderr = os.Stderr
	out, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(out)
	var pids []int
	for range n {
		line, err := lines.ReadString('\n')
		if err != nil {
			daemon.Process.Kill()
			daemon.Wait()
			t.Fatalf("daemon did not start the chute: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("daemon printed %q", line)
		}
		pids = append(pids, pid)
	}
	if err := daemon.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	daemon.Wait()
	return pids
}

func attach(t *testing.T, stateDir string) (*sandbox.Chute, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return sandbox.Attach(ctx, stateDir)
}

func TestSurvivesDaemonDeath(t *testing.T) {
	s := newSpec(t, "survivor", `trap 'echo bye; exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done`)
	pid := startFromDaemon(t, s)

	// The daemon is dead; the chute goes on, and so do its logs.
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("chute pid %d gone with its daemon: %v", pid, err)
	}
	before := len(logLines(t, s.LogDir))
	time.Sleep(500 * time.Millisecond)
	if after := len(logLines(t, s.LogDir)); after <= before {
		t.Errorf("log stopped growing after the daemon died: %d then %d lines", before, after)
	}

	c, err := attach(t, s.StateDir)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if c.Pid() != pid {
		t.Errorf("attached pid %d, started %d", c.Pid(), pid)
	}
	if c.StartedAt().IsZero() || time.Since(c.StartedAt()) > time.Minute {
		t.Errorf("attached StartedAt %v", c.StartedAt())
	}
	select {
	case <-c.Exited():
		t.Fatal("Exited closed for a running chute")
	case <-time.After(200 * time.Millisecond):
	}
	// A second daemon may attach too, and detach by dropping its handle.
	if c2, err := attach(t, s.StateDir); err != nil || c2.Pid() != pid {
		t.Fatalf("second Attach: %v", err)
	}
	if err := sandbox.Cleanup(s.StateDir); err == nil {
		t.Error("Cleanup of a running chute's state succeeded")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Stop(ctx, 10*time.Second)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st.Code != 7 || st.Signal != "" {
		t.Errorf("exit status %+v, want code 7 from the TERM trap", st)
	}
	if lines := logLines(t, s.LogDir); lines[len(lines)-1] != "stdout bye" {
		t.Errorf("last log line %q, want the trap's output", lines[len(lines)-1])
	}
	if err := sandbox.Cleanup(s.StateDir); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	if _, err := os.Stat(s.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir after Cleanup: %v", err)
	}
}

func TestExitWhileNoDaemon(t *testing.T) {
	s := newSpec(t, "orphan", `sleep 0.5; exit 5`)
	pid := startFromDaemon(t, s)
	exitFile := filepath.Join(s.StateDir, "exit.json")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(s.StateDir, "shim.sock")); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shim still serving 10s after its chute should have exited")
		}
	}
	if _, err := os.Stat(exitFile); err != nil {
		t.Fatalf("no exit record: %v", err)
	}
	c, err := attach(t, s.StateDir)
	if !errors.Is(err, sandbox.ErrNotRunning) || c == nil {
		t.Fatalf("Attach: %v, want ErrNotRunning with a handle", err)
	}
	if c.Pid() != pid {
		t.Errorf("pid %d, started %d", c.Pid(), pid)
	}
	if st := wait(t, c); st.Code != 5 {
		t.Errorf("recorded exit status %+v, want code 5", st)
	}
	if err := sandbox.Cleanup(s.StateDir); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(t, s.StateDir); !errors.Is(err, sandbox.ErrNoShim) {
		t.Errorf("Attach after Cleanup: %v, want ErrNoShim", err)
	}
}

// testCgroup makes a cgroup for the test, killed and removed at its end.
func testCgroup(t *testing.T, path string, r cgroup.Resources) *cgroup.Group {
	t.Helper()
	g, err := cgroup.Open(path, r)
	if err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	t.Cleanup(func() {
		g.Kill()
		if err := g.Delete(); err != nil {
			t.Errorf("delete test cgroup: %v", err)
		}
	})
	return g
}

func TestCgroupPlacement(t *testing.T) {
	path := fmt.Sprintf("/paradrop-sandbox-test-%d", os.Getpid())
	g := testCgroup(t, path, cgroup.Resources{Pids: 64})
	s := newSpec(t, "grouped", `grep -E ':(pids|memory):' /proc/self/cgroup | sort; echo ready; sleep 1000`)
	s.CgroupPath = path
	c := start(t, s)
	waitForLog(t, s.LogDir, "ready")
	procs, err := g.Procs()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range procs {
		found = found || p == c.Pid()
	}
	if !found {
		t.Errorf("chute pid %d not in cgroup %s (procs %v)", c.Pid(), path, procs)
	}
	hostView, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", path, "cgroup.procs"))
	if err != nil || !strings.Contains(string(hostView), strconv.Itoa(c.Pid())+"\n") {
		t.Errorf("cgroupfs procs of %s: %q, %v; want pid %d", path, hostView, err, c.Pid())
	}
	// The shim, which started init from inside the group (on v1 its
	// thread visits it to do so), stays outside: none of its threads is
	// charged to the chute.
	shim := ppid(t, c.Pid())
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", shim))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/cgroup", shim, task.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), ":"+path+"\n") {
			t.Errorf("shim %d's thread %s is in the chute's cgroup:\n%s", shim, task.Name(), b)
		}
	}
	// The cgroup namespace was made after the move: the chute's own group
	// is its root.
	lines := logLines(t, s.LogDir)
	var ns []string
	for _, l := range lines[:len(lines)-1] {
		_, rest, _ := strings.Cut(l, ":")
		ns = append(ns, rest)
	}
	if want := "memory:/ pids:/"; strings.Join(ns, " ") != want {
		t.Errorf("chute sees its cgroups as %q, want %q", strings.Join(ns, " "), want)
	}
}

// A pids limit of one leaves no room for the shim's thread to start init
// from inside the group (cgroup.Group.SpawnIn): init is moved in instead,
// and the chute runs.
func TestCgroupPidsLimitOne(t *testing.T) {
	path := fmt.Sprintf("/paradrop-sandbox-test-%d-one", os.Getpid())
	testCgroup(t, path, cgroup.Resources{Pids: 1})
	s := newSpec(t, "onepid", `echo alone`)
	s.CgroupPath = path
	st, lines := runScript(t, s)
	if st.Code != 0 || strings.Join(lines, " ") != "stdout alone" {
		t.Errorf("exit status %+v, output %q; want 0 and alone", st, lines)
	}
}

// testNetNS makes a network namespace, pinned in the test's own directory
// (`ip netns add` could bind iproute2's /run/netns over namespaces other
// tests pinned there), holding a veth pair chutelink0-chutelink1, and
// returns its path.
func testNetNS(t *testing.T) string {
	t.Helper()
	h := nettest.NewHost(t)
	nettest.Exec(t, h, "ip", "link", "add", "chutelink0", "type", "veth", "peer", "name", "chutelink1")
	return h.NetNS
}

// TestJoinNetNS runs a chute in a network namespace made beforehand, as
// the daemon does, with a dummy link that only that namespace has.
func TestJoinNetNS(t *testing.T) {
	netns := testNetNS(t)
	s := newSpec(t, "netjoin", `cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort; touch /sys/probe 2>/dev/null || echo sys-ro`)
	s.NetNS = netns
	st, lines := runScript(t, s)
	if st.Code != 0 {
		t.Fatalf("exit status %+v, output %q", st, lines)
	}
	if got := strings.Join(lines, " "); got != "stdout chutelink0 stdout chutelink1 stdout lo stdout sys-ro" {
		t.Errorf("chute's links: %q, want the joined namespace's veth pair and lo", got)
	}
}

func TestStartCanceled(t *testing.T) {
	for _, how := range starters(t) {
		t.Run(how.name, func(t *testing.T) {
			s := newSpec(t, "canceled", "sleep 1000")
			// Canceled before the call: a deadline of a few milliseconds
			// was met by warm starts of a static binary, so that the
			// test depended on the machine's speed. The shim is still
			// started or woken, and must die.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if c, err := how.start(t, ctx, s); !errors.Is(err, context.Canceled) {
				if c != nil {
					c.Signal(syscall.SIGKILL)
				}
				t.Fatalf("Start with a canceled context: %v", err)
			}
			// The half-started shim dies, and its chute with it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := attach(t, s.StateDir)
				if errors.Is(err, sandbox.ErrNoShim) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("shim still there after a canceled Start: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// The init role runs before the binary's heavy dependencies are
// initialised: here, those of this test binary, which links the sandbox
// and all it imports (containerd's cgroups with their protobuf registry,
// the seccomp library's syscall tables).
func TestInitRunsBeforeOtherPackages(t *testing.T) {
	planR, planW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	planW.Close() // an empty plan
	var trace strings.Builder
	cmd := exec.Command(os.Args[0], sandbox.InitCommand)
	cmd.Env = []string{"GODEBUG=inittrace=1"}
	cmd.Stderr = &trace
	cmd.ExtraFiles = []*os.File{planR, statusW}
	err = cmd.Start()
	planR.Close()
	statusW.Close()
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(statusR)
	statusR.Close()
	if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("init with an empty plan: %v, want exit status 1", err)
	}
	if string(status) != "plan ended without an exec" {
		t.Errorf("init reported %q", status)
	}
	checkInitTrace(t, "init", trace.String())
}

// checkInitTrace fails the test if the GODEBUG=inittrace=1 output of a
// role shows heavy packages initialised before the role ran.
func checkInitTrace(t *testing.T, role, trace string) {
	t.Helper()
	if !strings.Contains(trace, "init os @") {
		t.Fatalf("no init trace:\n%s", trace)
	}
	for _, pkg := range []string{"google.golang.org/protobuf", "github.com/elastic/go-seccomp-bpf/arch", "encoding/json", "paradrop/"} {
		if strings.Contains(trace, "init "+pkg) {
			t.Errorf("%s was initialised before the %s role ran:\n%s", pkg, role, trace)
		}
	}
}

// CheckHost refuses a directory chutes could not be started from, here on
// an unbindable mount, so that the daemon says so once at start-up.
func TestCheckHost(t *testing.T) {
	dir := t.TempDir()
	if err := sandbox.CheckHost(dir); err != nil {
		t.Fatalf("CheckHost(%s): %v", dir, err)
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_UNBINDABLE, ""); err != nil {
		t.Fatal(err)
	}
	err := sandbox.CheckHost(dir)
	if err == nil || !strings.Contains(err.Error(), "chutes cannot run from "+dir) {
		t.Errorf("CheckHost on an unbindable mount: %v", err)
	}
}
