package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute/sandbox"
)

// starter is one way to start a chute: cold, or under a launcher's monitor.
type starter struct {
	name  string
	start func(t *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error)
}

// starters returns both ways; the monitor one waits, untimed and outside
// the start's ctx, for the monitor to run before each start.
func starters(t *testing.T) []starter {
	l := newLauncher(t, "")
	return []starter{
		{"cold", func(_ *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error) {
			return sandbox.Start(ctx, s)
		}},
		{"monitor", func(t *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error) {
			monitorPid(t, l)
			return l.Start(ctx, s)
		}},
	}
}

// startHow starts s the way how does, killed at the end of the test.
func startHow(t *testing.T, how starter, s sandbox.Spec) *sandbox.Chute {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := how.start(t, ctx, s)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		c.Signal(syscall.SIGKILL)
		wait(t, c)
	})
	return c
}

// newLauncher returns a launcher of exe with a run directory of the
// test's, closed at the end of the test.
func newLauncher(t *testing.T, exe string) *sandbox.Launcher {
	t.Helper()
	l := sandbox.NewLauncher(exe, filepath.Join(t.TempDir(), "monitor"), nil)
	t.Cleanup(l.Close)
	return l
}

func monitorPid(t *testing.T, l *sandbox.Launcher) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, err := l.MonitorPid(ctx)
	if err != nil {
		t.Fatalf("no monitor: %v", err)
	}
	return pid
}

func startWith(t *testing.T, l *sandbox.Launcher, s sandbox.Spec) *sandbox.Chute {
	t.Helper()
	return startHow(t, starter{"launcher", func(_ *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error) {
		return l.Start(ctx, s)
	}}, s)
}

func ppid(t *testing.T, pid int) int {
	t.Helper()
	p, err := strconv.Atoi(procStatus(t, pid)["PPid"])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gone tells whether pid has exited (reaped, or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := bytes.Cut(b, []byte(") "))
	return len(after) > 0 && after[0] == 'Z'
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !gone(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still there after 10s", what, pid)
		}
	}
}

// cmdline is the command line of pid, its words joined by spaces.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), " ")
}

// killAtEnd SIGKILLs pid at the end of the test if it still plays the
// monitor role: a failure must leave no chute behind.
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), sandbox.MonitorCommand) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// TestLauncherMonitorStart: the chutes are started by one monitor,
// started before the calls, and are in every way chutes started cold.
func TestLauncherMonitorStart(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	s := newSpec(t, "warm", `trap 'echo bye; exit 3' TERM; echo $$; echo oops >&2; echo ready; while true; do sleep 0.1; done`)
	c := startWith(t, l, s)
	s2 := newSpec(t, "warm2", `echo ready; sleep 1000`)
	c2 := startWith(t, l, s2)

	for _, ch := range []*sandbox.Chute{c, c2} {
		if shim := ppid(t, ch.Pid()); shim != mon {
			t.Fatalf("chute %d's parent is pid %d, want the monitor %d", ch.Pid(), shim, mon)
		}
		if ns := procStatus(t, ch.Pid())["NSpid"]; ns != fmt.Sprintf("%d\t1", ch.Pid()) {
			t.Errorf("NSpid %q: the chute is not pid 1 of its own pid namespace", ns)
		}
	}
	if sid, err := unix.Getsid(mon); err != nil || sid != mon {
		t.Errorf("monitor's session %d (%v), want its own", sid, err)
	}
	if got := shimPID(t, s); got != mon {
		t.Errorf("shim.pid names %d, want the monitor %d", got, mon)
	}
	waitForLog(t, s.LogDir, "ready")
	waitForLog(t, s2.LogDir, "ready")
	if a, err := attach(t, s.StateDir); err != nil || a.Pid() != c.Pid() {
		t.Fatalf("Attach: %v", err)
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c); st.Code != 3 || st.Signal != "" {
		t.Errorf("exit status %+v, want code 3", st)
	}
	// The two streams are separate pipes: only each one's order is known.
	var stdout, stderr []string
	for _, l := range logLines(t, s.LogDir) {
		if text, ok := strings.CutPrefix(l, "stderr "); ok {
			stderr = append(stderr, text)
		} else {
			stdout = append(stdout, l)
		}
	}
	if got, want := strings.Join(stdout, "|"), "stdout 1|stdout ready|stdout bye"; got != want {
		t.Errorf("stdout in the log %q, want %q", got, want)
	}
	if got := strings.Join(stderr, "|"); got != "oops" {
		t.Errorf("stderr in the log %q, want oops", got)
	}
	// The other chute goes on; once it ends too and the launcher lets
	// go, the monitor exits.
	if gone(c2.Pid()) || gone(mon) {
		t.Fatalf("chute %d or monitor %d gone with the first chute's end", c2.Pid(), mon)
	}
	c2.Signal(syscall.SIGKILL)
	if st := wait(t, c2); st.Signal != "killed" {
		t.Errorf("second chute's exit status %+v", st)
	}
	l.Close()
	waitGone(t, mon, "the monitor with no chute left")
}

// TestMonitorKilled: a monitor SIGKILLed takes its three chutes with it;
// every handle sees it (as a daemon's supervisor sees a shim die), and
// the next start gets a new monitor.
func TestMonitorKilled(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	var chutes []*sandbox.Chute
	for i := range 3 {
		s := newSpec(t, fmt.Sprintf("victim%d", i), `echo ready; sleep 1000`)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := l.Start(ctx, s)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		chutes = append(chutes, c)
	}
	for _, c := range chutes {
		c.Exited() // watching, as the daemon does
	}
	if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i, c := range chutes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Wait(ctx)
		cancel()
		if !errors.Is(err, sandbox.ErrNoShim) {
			t.Errorf("chute %d: Wait after its monitor was killed: %v, want ErrNoShim", i, err)
		}
		waitGone(t, c.Pid(), "a chute of a killed monitor")
	}
	s := newSpec(t, "after", `sleep 1000`)
	c := startWith(t, l, s)
	if p := ppid(t, c.Pid()); p == mon || !strings.Contains(cmdline(t, p), sandbox.MonitorCommand) {
		t.Errorf("chute after the kill served by %d (%s), want a new monitor", p, cmdline(t, p))
	}
}

// TestMonitorPanicIsolated: a panic while serving one chute's request
// ends neither that chute nor another one of the same monitor; one in the
// goroutine that watches a chute ends that chute alone.
func TestMonitorPanicIsolated(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	a := newSpec(t, "panicky", `echo ready; sleep 1000`)
	b := newSpec(t, "bystander", `echo ready; sleep 1000`)
	ca, cb := startWith(t, l, a), startWith(t, l, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sandbox.Request(ctx, a.StateDir, sandbox.PanicOp); err == nil {
		t.Fatal("the panicking request got an answer")
	}
	if gone(mon) {
		t.Fatal("a panic serving one chute killed the monitor")
	}
	for _, s := range []sandbox.Spec{a, b} {
		c, err := attach(t, s.StateDir)
		if err != nil || gone(c.Pid()) {
			t.Errorf("chute %s after the panic: %v", s.Name, err)
		}
	}
	if log, err := os.ReadFile(filepath.Join(a.StateDir, "shim.log")); err != nil || !strings.Contains(string(log), "panic in request (recovered)") {
		t.Errorf("shim.log of the panicking chute: %q (%v)", log, err)
	}
	if log, _ := os.ReadFile(filepath.Join(b.StateDir, "shim.log")); len(log) > 0 {
		t.Errorf("the other chute's shim.log: %q", log)
	}
	// A panic in the goroutine that watches a chute kills that chute
	// alone, its end recorded.
	p := newSpec(t, sandbox.PanicAtStart, `sleep 1000`)
	cp := startWith(t, l, p)
	if st := wait(t, cp); st.Signal != "killed" {
		t.Errorf("the chute whose shim panicked ended with %+v, want killed", st)
	}
	if log, err := os.ReadFile(filepath.Join(p.StateDir, "shim.log")); err != nil || !strings.Contains(string(log), "panic in chute (recovered)") {
		t.Errorf("shim.log of the chute whose shim panicked: %q (%v)", log, err)
	}
	if gone(mon) || gone(ca.Pid()) || gone(cb.Pid()) {
		t.Fatal("a panic in one chute's goroutine ended the monitor or another chute")
	}
	for _, c := range []*sandbox.Chute{ca, cb} {
		if err := c.Signal(syscall.SIGKILL); err != nil {
			t.Errorf("signal after the panic: %v", err)
		}
	}
}

// TestMonitorBinaryReplaced: once the executable is replaced on disk,
// new chutes go to a monitor of the new binary; the old one serves its
// chute on and ends with it.
func TestMonitorBinaryReplaced(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "paradrop")
	copyExe(t, exe)
	l := newLauncher(t, exe)
	old := monitorPid(t, l)
	killAtEnd(t, old)
	s1 := newSpec(t, "oldbin", `echo ready; sleep 1000`)
	s1.Executable = exe
	c1 := startWith(t, l, s1)
	copyExe(t, exe+".new")
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	mon2 := monitorPid(t, l)
	killAtEnd(t, mon2)
	s2 := newSpec(t, "newbin", `echo ready; sleep 1000`)
	s2.Executable = exe
	c2 := startWith(t, l, s2)
	if p := ppid(t, c2.Pid()); p != mon2 || mon2 == old {
		t.Fatalf("chute after the upgrade served by %d (%s), want a new monitor %d, not %d", p, cmdline(t, p), mon2, old)
	}
	if exeOf, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", old)); err != nil || !strings.HasSuffix(exeOf, "(deleted)") {
		t.Errorf("old monitor runs %q (%v), want the replaced binary", exeOf, err)
	}
	if ppid(t, c1.Pid()) != old {
		t.Fatalf("the old chute moved from its monitor %d", old)
	}
	waitForLog(t, s1.LogDir, "ready")
	if err := c1.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait(t, c1)
	waitGone(t, old, "the old monitor after its last chute")
	if gone(mon2) || gone(c2.Pid()) {
		t.Errorf("the new monitor %d or its chute went with the old one", mon2)
	}
}

// fdCount is how many descriptors process pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settledFDCount is fdCount once it stays the same for 300 ms.
func settledFDCount(t *testing.T, pid int) int {
	t.Helper()
	n := fdCount(t, pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		m := fdCount(t, pid)
		if m == n {
			return n
		}
		n = m
	}
	t.Fatalf("process %d's descriptors did not settle in 5s", pid)
	return 0
}

// TestMonitorReleasesChutes: the monitor outlives its chutes, so what it
// holds for one (socket, logs, pipes, health door) must go with the
// chute, or with a start that failed; such a start leaves no socket
// behind that would never answer.
func TestMonitorReleasesChutes(t *testing.T) {
	exe := healthSpec(t, "probe").Executable
	l := newLauncher(t, exe)
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	// With its warm init made (after a chute that gains by one): the
	// monitor holds two descriptors for it.
	prime := newSpec(t, "prime", "true")
	prime.Executable = exe
	wait(t, startWith(t, l, prime))
	warmPid(t, mon)
	// Counted once they settle: while the warm init is made, and until
	// the first chute's ends are closed, the monitor holds a few more.
	base := settledFDCount(t, mon)
	for i := range 3 {
		s := healthSpec(t, fmt.Sprintf("released%d", i))
		setCheck(t, s, "echo alive")
		c := startWith(t, l, s)
		if res, err := check(t, c); err != nil || res.Output != "alive\n" {
			t.Fatalf("Check: %+v, %v", res, err)
		}
		c.Signal(syscall.SIGKILL)
		wait(t, c)
	}
	s := newSpec(t, "failed", "true")
	s.Executable = exe
	s.Args = []string{"nosuchcmd"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Start(ctx, s); err == nil {
		t.Fatal("a start of a missing command succeeded")
	}
	if _, err := sandbox.Attach(ctx, s.StateDir); !errors.Is(err, sandbox.ErrNoShim) {
		t.Fatalf("Attach after a failed start: %v, want ErrNoShim at once", err)
	}
	// Fewer than before is no leak: the failed start took the warm init,
	// and the next may not be made yet.
	n := fdCount(t, mon)
	for deadline := time.Now().Add(5 * time.Second); n > base && time.Now().Before(deadline); n = fdCount(t, mon) {
		time.Sleep(50 * time.Millisecond)
	}
	if n > base {
		t.Errorf("the monitor holds %d descriptors after its chutes ended, %d before", n, base)
	}
}

// TestLauncherDaemonDeath: when the daemon dies, its monitor and chute
// live on; the next daemon's launcher finds that monitor again, and
// re-attaches the chute.
func TestLauncherDaemonDeath(t *testing.T) {
	s := newSpec(t, "warmsurvivor", `i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done`)
	pids := fromFakeDaemon(t, s, 2, "warm")
	mon, chute := pids[0], pids[1]
	killAtEnd(t, mon)
	if shim := ppid(t, chute); shim != mon {
		t.Fatalf("chute's parent is pid %d, want the monitor %d", shim, mon)
	}
	before := len(logLines(t, s.LogDir))
	time.Sleep(500 * time.Millisecond)
	if gone(mon) || gone(chute) {
		t.Fatalf("monitor %d or chute %d gone with the daemon", mon, chute)
	}
	if after := len(logLines(t, s.LogDir)); after <= before {
		t.Errorf("log stopped growing after the daemon died: %d then %d lines", before, after)
	}
	l := sandbox.NewLauncher(s.Executable, monitorRunDir(s), nil)
	if again := monitorPid(t, l); again != mon {
		t.Errorf("the next launcher's monitor is %d, want the one left, %d", again, mon)
	}
	c, err := attach(t, s.StateDir)
	if err != nil || c.Pid() != chute {
		t.Fatalf("Attach: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := c.Stop(ctx, time.Second); err != nil || st.Signal != "killed" {
		t.Errorf("Stop: %+v, %v", st, err)
	}
	l.Close()
	waitGone(t, mon, "the monitor of a stopped chute")
}

// TestLauncherDeadMonitor: a monitor that died, idle or with a start
// under way, is replaced by another for the start.
func TestLauncherDeadMonitor(t *testing.T) {
	for _, tt := range []struct {
		name string
		kill func(t *testing.T, mon int)
		// during, if set, runs once the start has been under way for a
		// while, the assignment sent by then, off the test's goroutine.
		during func(t *testing.T, mon int)
	}{
		{"assignment unread", func(t *testing.T, mon int) {
			if err := syscall.Kill(mon, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, mon int) {
			if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
				t.Error(err)
			}
		}},
		{"killed", func(t *testing.T, mon int) {
			if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"killed and reaped", func(t *testing.T, mon int) {
			if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(t, mon, "killed monitor")
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLauncher(t, "")
			mon := monitorPid(t, l)
			killAtEnd(t, mon)
			tt.kill(t, mon)
			s := newSpec(t, "deadmon", `echo $$; sleep 0.3`)
			if tt.during != nil {
				time.AfterFunc(300*time.Millisecond, func() { tt.during(t, mon) })
			}
			c := startWith(t, l, s)
			if p := ppid(t, c.Pid()); p == mon {
				t.Fatalf("chute served by the dead monitor %d", mon)
			}
			if st := wait(t, c); st.Code != 0 {
				t.Errorf("exit status %+v", st)
			}
			if got := strings.Join(logLines(t, s.LogDir), "|"); got != "stdout 1" {
				t.Errorf("log %q", got)
			}
		})
	}
}

// TestLauncherStartGivenUp: a start whose context ends while the monitor
// has not answered leaves no chute running, whenever the monitor gets to it.
func TestLauncherStartGivenUp(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	if err := syscall.Kill(mon, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s := newSpec(t, "givenup", `echo started; sleep 1000`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, err := l.Start(ctx, s)
	syscall.Kill(mon, syscall.SIGCONT)
	if !errors.Is(err, context.DeadlineExceeded) {
		if c != nil {
			c.Signal(syscall.SIGKILL)
		}
		t.Fatalf("Start: %v, want the deadline", err)
	}
	// The monitor reads the assignment once it runs again, sees the
	// launcher gone and gives the start up, killing the init it made; or
	// it starts the chute, finds nobody to report to, and kills it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := attach(t, s.StateDir)
		if errors.Is(err, sandbox.ErrNotRunning) {
			if st := wait(t, c); st.Signal != "killed" {
				t.Errorf("exit status %+v, want killed", st)
			}
			break
		}
		if log, _ := os.ReadFile(filepath.Join(s.StateDir, "shim.log")); errors.Is(err, sandbox.ErrNoShim) &&
			bytes.Contains(log, []byte("start failed: start given up by its caller")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chute of a given-up start not killed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLauncherNoMonitor: where no monitor can run (here its run directory
// cannot be made), chutes still start, each under a shim of its own.
func TestLauncherNoMonitor(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var said []string
	l := sandbox.NewLauncher("", filepath.Join(notDir, "monitor"), func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		said = append(said, fmt.Sprintf(format, args...))
	})
	defer l.Close()
	s := newSpec(t, "nomon", `echo $$; sleep 1000`)
	c := startWith(t, l, s)
	if p := ppid(t, c.Pid()); !strings.Contains(cmdline(t, p), sandbox.ShimCommand+" "+s.StateDir) {
		t.Errorf("chute's parent %d runs %q, want a shim of its own", p, cmdline(t, p))
	}
	// Usable now, but a monitor that could not start is not tried again
	// at every start, each try costing a start-up of the binary.
	if err := os.Remove(notDir); err != nil {
		t.Fatal(err)
	}
	s2 := newSpec(t, "nomon2", `echo $$; sleep 1000`)
	c2 := startWith(t, l, s2)
	if p := ppid(t, c2.Pid()); !strings.Contains(cmdline(t, p), sandbox.ShimCommand+" "+s2.StateDir) {
		t.Errorf("second chute's parent %d runs %q, want a shim of its own", p, cmdline(t, p))
	}
	if _, err := os.Stat(notDir); err == nil {
		t.Errorf("the launcher tried to start a monitor again at once")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(said) != 1 || !strings.Contains(said[0], "no monitor") || !strings.Contains(said[0], "not a directory") {
		t.Errorf("the launcher said %q, want once why it has no monitor", said)
	}
}

// TestLauncherClose: Close lets an idle monitor exit and no running
// chute; a Start after Close still works, under a shim of its own.
func TestLauncherClose(t *testing.T) {
	l := sandbox.NewLauncher("", filepath.Join(t.TempDir(), "monitor"), nil)
	mon := monitorPid(t, l)
	killAtEnd(t, mon)
	l.Close()
	waitGone(t, mon, "an idle monitor after Close")

	l = sandbox.NewLauncher("", filepath.Join(t.TempDir(), "monitor"), nil)
	mon = monitorPid(t, l)
	killAtEnd(t, mon)
	s := newSpec(t, "closing", `echo ready; sleep 1000`)
	c := startWith(t, l, s)
	l.Close()
	time.Sleep(200 * time.Millisecond)
	if gone(mon) || gone(c.Pid()) {
		t.Errorf("Close ended the monitor %d or the chute %d", mon, c.Pid())
	}
	if _, err := l.MonitorPid(context.Background()); err == nil {
		t.Error("a closed launcher started a monitor")
	}
	s2 := newSpec(t, "afterclose", `echo $$`)
	c2 := startWith(t, l, s2)
	if st := wait(t, c2); st.Code != 0 {
		t.Errorf("start after Close: exit status %+v", st)
	}
}

// copyExe copies the test binary, which plays the monitor, shim and init roles, to
// path.
func copyExe(t *testing.T, path string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyExeFrom(t, self, path)
}

// copyExeFrom copies the executable src to path.
func copyExeFrom(t *testing.T, src, path string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLauncherConcurrent: concurrent starts, the first of which starts
// the monitor, each get a working chute.
func TestLauncherConcurrent(t *testing.T) {
	l := newLauncher(t, "")
	const n = 4
	specs := make([]sandbox.Spec, n)
	for i := range specs {
		specs[i] = newSpec(t, fmt.Sprintf("conc%d", i), fmt.Sprintf(`echo $$ %d`, i))
	}
	chutes := make([]*sandbox.Chute, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			chutes[i], errs[i] = l.Start(ctx, specs[i])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent starts: %v", err)
	}
	for i, c := range chutes {
		if st := wait(t, c); st.Code != 0 {
			t.Errorf("chute %d: exit status %+v", i, st)
		}
		if got, want := strings.Join(logLines(t, specs[i].LogDir), "|"), fmt.Sprintf("stdout 1 %d", i); got != want {
			t.Errorf("chute %d: log %q, want %q", i, got, want)
		}
	}
}

// TestHungStartsHoldNoTurn: the monitor runs as many starts at a time as
// there are CPUs, but starts that hang (here, more of them than CPUs, each
// stopped by the test monitor until its launcher gives up after 8 s) do
// not hold up the next chute's start beyond their turn.
func TestHungStartsHoldNoTurn(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	hung := runtime.NumCPU() + 1
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range hung {
		s := newSpec(t, sandbox.HangAtStart, `echo never`)
		s.UserNS = i%2 == 0 // some cloned, some from the warm init
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			if c, err := l.Start(ctx, s); err == nil {
				c.Signal(syscall.SIGKILL)
				t.Errorf("a hung start succeeded")
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); len(stoppedChildren(mon)) < runtime.NumCPU(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the hung starts stopped, want %d", len(stoppedChildren(mon)), runtime.NumCPU())
		}
	}
	s := newSpec(t, "next", `echo up`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	c, err := l.Start(ctx, s)
	if err != nil {
		t.Fatalf("start behind %d hung starts: %v", hung, err)
	}
	if st := wait(t, c); st.Code != 0 {
		t.Errorf("exit %+v", st)
	}
}
