package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute/sandbox"
)

// starter is one way to start a chute: cold, or from a launcher's spare.
type starter struct {
	name  string
	start func(t *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error)
}

// starters returns both ways; the warm one waits, untimed and outside the
// start's ctx, for a ready spare before each start.
func starters(t *testing.T) []starter {
	l := newLauncher(t, "")
	return []starter{
		{"cold", func(_ *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error) {
			return sandbox.Start(ctx, s)
		}},
		{"warm", func(t *testing.T, ctx context.Context, s sandbox.Spec) (*sandbox.Chute, error) {
			sparePid(t, l)
			return l.Start(ctx, s)
		}},
	}
}

func newLauncher(t *testing.T, exe string) *sandbox.Launcher {
	t.Helper()
	l := sandbox.NewLauncher(exe)
	t.Cleanup(l.Close)
	return l
}

func sparePid(t *testing.T, l *sandbox.Launcher) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, err := l.SparePid(ctx)
	if err != nil {
		t.Fatalf("no spare: %v", err)
	}
	return pid
}

func startWith(t *testing.T, l *sandbox.Launcher, s sandbox.Spec) *sandbox.Chute {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := l.Start(ctx, s)
	if err != nil {
		t.Fatalf("Launcher.Start: %v", err)
	}
	t.Cleanup(func() {
		c.Signal(syscall.SIGKILL)
		wait(t, c)
	})
	return c
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

// idleSpares lists this process's children that are spares never given a
// chute: their state dir would be open as shim.log on fd 1.
func idleSpares(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || gone(pid) {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.HasSuffix(cmd, []byte(sandbox.ShimCommand+"\x00--spare\x00")) {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		_, after, _ := bytes.Cut(st, []byte(") "))
		f := strings.Fields(string(after))
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		if out1, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid)); out1 == "/dev/null" {
			out = append(out, pid)
		}
	}
	return out
}

// TestLauncherWarmStart: the chute is started by the spare booted before
// the call, and is in every way a chute started cold.
func TestLauncherWarmStart(t *testing.T) {
	l := newLauncher(t, "")
	spare := sparePid(t, l)
	s := newSpec(t, "warm", `trap 'echo bye; exit 3' TERM; echo $$; echo oops >&2; echo ready; while true; do sleep 0.1; done`)
	c := startWith(t, l, s)

	if shim := ppid(t, c.Pid()); shim != spare {
		t.Fatalf("chute's shim is pid %d, want the spare %d", shim, spare)
	}
	// The next spare boots at idle priority; the chute and its shim run
	// at the normal one.
	var next []int
	for deadline := time.Now().Add(5 * time.Second); len(next) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		next = idleSpares(t)
	}
	if len(next) != 1 {
		t.Fatalf("idle spares %v after the start, want one", next)
	}
	for _, p := range []struct {
		what   string
		pid    int
		policy uint32
	}{{"next spare", next[0], unix.SCHED_IDLE}, {"chute", c.Pid(), unix.SCHED_NORMAL}, {"shim", spare, unix.SCHED_NORMAL}} {
		if attr, err := unix.SchedGetAttr(p.pid, 0); err != nil || attr.Policy != p.policy {
			t.Errorf("%s's scheduling policy %+v (%v), want %d", p.what, attr, err, p.policy)
		}
	}
	if sid, err := unix.Getsid(spare); err != nil || sid != spare {
		t.Errorf("shim's session %d (%v), want its own", sid, err)
	}
	for _, fd := range []int{1, 2} {
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", spare, fd)); err != nil || p != filepath.Join(s.StateDir, "shim.log") {
			t.Errorf("shim's fd %d is %q (%v), want its shim.log", fd, p, err)
		}
	}
	if ns := procStatus(t, c.Pid())["NSpid"]; ns != fmt.Sprintf("%d\t1", c.Pid()) {
		t.Errorf("NSpid %q: the chute is not pid 1 of its own pid namespace", ns)
	}
	if next := sparePid(t, l); next == spare {
		t.Errorf("the launcher still offers the spare it gave away")
	}
	waitForLog(t, s.LogDir, "ready")
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
	waitGone(t, spare, "the shim of an exited chute")
}

// TestLauncherPrefersCold: where cold starts have been the faster, the
// launcher starts cold and leaves its spare idle, booting no other.
func TestLauncherPrefersCold(t *testing.T) {
	l := newLauncher(t, "")
	spare := sparePid(t, l)
	l.PreferCold()
	s := newSpec(t, "coldpath", `echo ready; sleep 1000`)
	c := startWith(t, l, s)
	if shim := ppid(t, c.Pid()); shim == spare {
		t.Fatalf("chute's shim is the spare %d: the launcher did not go cold", spare)
	}
	waitForLog(t, s.LogDir, "ready")
	// A spare booted after the start would show by now.
	time.Sleep(500 * time.Millisecond)
	if idle := idleSpares(t); len(idle) != 1 || idle[0] != spare {
		t.Errorf("idle spares %v, want only the first, %d", idle, spare)
	}
}

// TestLauncherDaemonDeath: when the daemon dies, its idle spare exits on
// its own, while the spare it gave a chute lives on with the chute.
func TestLauncherDaemonDeath(t *testing.T) {
	s := newSpec(t, "warmsurvivor", `i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done`)
	pids := fromFakeDaemon(t, s, 3, "warm")
	served, chute, idle := pids[0], pids[1], pids[2]
	// A failure below must not leave the chute running: its shim's death
	// takes it along.
	t.Cleanup(func() {
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", served)); err == nil && strings.Contains(string(cmd), sandbox.ShimCommand) {
			syscall.Kill(served, syscall.SIGKILL)
		}
	})
	if shim := ppid(t, chute); shim != served {
		t.Fatalf("chute's shim is pid %d, want the spare %d", shim, served)
	}
	waitGone(t, idle, "the idle spare of a dead daemon")
	before := len(logLines(t, s.LogDir))
	time.Sleep(500 * time.Millisecond)
	if gone(served) || gone(chute) {
		t.Fatalf("shim %d or chute %d gone with the daemon", served, chute)
	}
	if after := len(logLines(t, s.LogDir)); after <= before {
		t.Errorf("log stopped growing after the daemon died: %d then %d lines", before, after)
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
	waitGone(t, served, "the shim of a stopped chute")
}

// TestLauncherDeadSpare: a spare that died, or runs a binary replaced
// since, is passed over for a cold start.
func TestLauncherDeadSpare(t *testing.T) {
	for _, tt := range []struct {
		name string
		kill func(t *testing.T, exe string, spare int)
		// during, if set, runs once the start has been under way for a
		// while, the assignment sent by then, off the test's goroutine.
		during func(t *testing.T, spare int)
	}{
		{"died with the assignment unread", func(t *testing.T, _ string, spare int) {
			if err := syscall.Kill(spare, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, spare int) {
			if err := syscall.Kill(spare, syscall.SIGKILL); err != nil {
				t.Error(err)
			}
		}},
		{"killed", func(t *testing.T, _ string, spare int) {
			if err := syscall.Kill(spare, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"killed and reaped", func(t *testing.T, _ string, spare int) {
			if err := syscall.Kill(spare, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(t, spare, "killed spare")
		}, nil},
		{"binary replaced", func(t *testing.T, exe string, _ int) {
			copyExe(t, exe+".new")
			if err := os.Rename(exe+".new", exe); err != nil {
				t.Fatal(err)
			}
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exe := filepath.Join(t.TempDir(), "paradrop")
			copyExe(t, exe)
			l := newLauncher(t, exe)
			spare := sparePid(t, l)
			tt.kill(t, exe, spare)
			s := newSpec(t, "deadspare", `echo $$; sleep 0.3`)
			s.Executable = exe
			if tt.during != nil {
				time.AfterFunc(300*time.Millisecond, func() { tt.during(t, spare) })
			}
			c := startWith(t, l, s)
			if shim := ppid(t, c.Pid()); shim == spare {
				t.Fatalf("chute served by spare %d, which should have been passed over", spare)
			}
			if st := wait(t, c); st.Code != 0 {
				t.Errorf("exit status %+v", st)
			}
			if got := strings.Join(logLines(t, s.LogDir), "|"); got != "stdout 1" {
				t.Errorf("log %q", got)
			}
			waitGone(t, spare, "the passed-over spare")
		})
	}
}

// copyExe copies the test binary, which plays the shim and init roles, to
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

// TestLauncherClose: Close ends the idle spare and nothing else; a Start
// after Close still works, cold, and leaves no spare behind either.
func TestLauncherClose(t *testing.T) {
	l := sandbox.NewLauncher("")
	first := sparePid(t, l)
	s := newSpec(t, "closing", `echo ready; sleep 1000`)
	c := startWith(t, l, s)
	idle := sparePid(t, l)
	l.Close()
	if !gone(idle) {
		t.Errorf("idle spare %d still there after Close", idle)
	}
	if gone(first) || gone(c.Pid()) {
		t.Errorf("Close ended the shim %d or the chute %d it had given away", first, c.Pid())
	}
	if _, err := l.SparePid(context.Background()); err == nil {
		t.Error("a closed launcher warmed a spare")
	}
	s2 := newSpec(t, "afterclose", `echo $$`)
	c2 := startWith(t, l, s2)
	if st := wait(t, c2); st.Code != 0 {
		t.Errorf("start after Close: exit status %+v", st)
	}
	if left := idleSpares(t); len(left) > 0 {
		t.Errorf("idle spares left after Close: %v", left)
	}
}

// TestLauncherConcurrent: concurrent starts each get a working shim, from
// the spare or cold.
func TestLauncherConcurrent(t *testing.T) {
	l := newLauncher(t, "")
	sparePid(t, l)
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

// burst starts every spec (a chute that sleeps) at once through l and
// returns the pid of each chute's shim; the chutes are killed at the end
// of the test.
func burst(t *testing.T, l *sandbox.Launcher, specs []sandbox.Spec) []int {
	t.Helper()
	chutes := make([]*sandbox.Chute, len(specs))
	errs := make([]error, len(specs))
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			<-gate
			chutes[i], errs[i] = l.Start(ctx, specs[i])
		})
	}
	close(gate)
	wg.Wait()
	for _, c := range chutes {
		if c != nil {
			t.Cleanup(func() {
				c.Signal(syscall.SIGKILL)
				wait(t, c)
			})
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("burst of starts: %v", err)
	}
	shims := make([]int, len(chutes))
	for i, c := range chutes {
		shims[i] = ppid(t, c.Pid())
	}
	return shims
}

// TestLauncherSparePool: after a burst of starts, the launcher keeps as
// many spares as the burst had under way, so that the next burst is
// served by spares only; once the burst's hold is over, one spare is left.
func TestLauncherSparePool(t *testing.T) {
	l := newLauncher(t, "")
	sparePid(t, l)
	const n = 4
	specs := func(round string) []sandbox.Spec {
		s := make([]sandbox.Spec, n)
		for i := range s {
			s[i] = newSpec(t, fmt.Sprintf("pool%s%d", round, i), `sleep 1000`)
		}
		return s
	}
	burst(t, l, specs("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	idle := idleSpares(t)
	if len(idle) != n {
		t.Fatalf("idle spares after a burst of %d: %v, want %d", n, idle, n)
	}
	// Shrinks this long after the next burst.
	l.SetSpareHold(time.Second)
	shims := burst(t, l, specs("b"))
	slices.Sort(idle)
	slices.Sort(shims)
	if !slices.Equal(shims, idle) {
		t.Errorf("the second burst's shims %v, want the idle spares %v", shims, idle)
	}
	var left []int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = idleSpares(t); len(left) == 1 {
			break
		}
	}
	if len(left) != 1 {
		t.Fatalf("idle spares once the hold is over: %v, want one", left)
	}
	if pid := sparePid(t, l); pid != left[0] {
		t.Errorf("the launcher offers spare %d, want the one left, %d", pid, left[0])
	}
}
