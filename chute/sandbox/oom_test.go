package sandbox_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
)

// daemonHeld is what the hog daemon of TestOOMKillsTheChute holds: more
// than the chute can reach before its group's parent runs out, so that the
// daemon is the biggest process there.
const daemonHeld = 40 << 20

var held []byte

// holdMemoryAsDaemon lowers the process's OOM score as serve does and
// holds daemonHeld bytes of touched memory.
func holdMemoryAsDaemon() error {
	if err := sandbox.ProtectFromOOM(); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	held = make([]byte, daemonHeld)
	for i := range held {
		held[i] = 1
	}
	return nil
}

func oomScoreAdj(t *testing.T, pid string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOOMScores: the daemon (here the test process) lowers its OOM score,
// or cannot without CAP_SYS_RESOURCE; its shims and monitor keep its
// score and the chute gets one 900 above it (0 when the daemon could
// lower its own), and cannot lower it below 0.
func TestOOMScores(t *testing.T) {
	for _, how := range starters(t) {
		t.Run(how.name, func(t *testing.T) { testOOMScores(t, how) })
	}
}

func testOOMScores(t *testing.T, how starter) {
	was := oomScoreAdj(t, "self")
	t.Cleanup(func() {
		// Raising it back needs no privilege.
		os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(was)), 0)
	})
	daemon := sandbox.DaemonOOMScoreAdj
	if err := sandbox.ProtectFromOOM(); errors.Is(err, os.ErrPermission) {
		t.Logf("no CAP_SYS_RESOURCE: the daemon keeps its score %d (%v)", was, err)
		daemon = was
	} else if err != nil {
		t.Fatal(err)
	}
	chute := min(daemon-sandbox.DaemonOOMScoreAdj, 1000)
	s := newSpec(t, "oomscore", `cat /proc/self/oom_score_adj; echo -1 > /proc/self/oom_score_adj; echo lowered $?; cat /proc/self/oom_score_adj; echo ready; sleep 1000`)
	c := startHow(t, how, s)
	waitForLog(t, s.LogDir, "ready")
	if got := oomScoreAdj(t, "self"); got != daemon {
		t.Errorf("daemon's oom_score_adj %d, want %d", got, daemon)
	}
	if got := oomScoreAdj(t, strconv.Itoa(c.Pid())); got != chute {
		t.Errorf("chute's oom_score_adj %d, want %d", got, chute)
	}
	if got := oomScoreAdj(t, strconv.Itoa(ppid(t, c.Pid()))); got != daemon {
		t.Errorf("shim's oom_score_adj %d, want the daemon's %d", got, daemon)
	}
	var out []string
	for _, l := range logLines(t, s.LogDir) {
		if strings.HasPrefix(l, "stdout ") {
			out = append(out, strings.TrimPrefix(l, "stdout "))
		}
	}
	want := strconv.Itoa(chute)
	if len(out) != 4 || out[0] != want || out[1] == "lowered 0" || out[2] != want {
		t.Errorf("chute's own view of its score, then after it tried -1: %q; want %s, a failed write, %s", out, want, want)
	}
}

// TestOOMKillsTheChute runs a daemon holding more memory than its chute
// and the chute, which allocates until the cgroup parent of both (64 MiB,
// as the router bench's box holds daemon, OVS and chutes) is out of
// memory: the kernel's OOM killer must take the chute, not the daemon nor
// the chute's shim or monitor.
func TestOOMKillsTheChute(t *testing.T) {
	for _, how := range []string{"cold", "warm"} {
		t.Run(how, func(t *testing.T) { testOOMKillsTheChute(t, how) })
	}
}

func testOOMKillsTheChute(t *testing.T, how string) {
	parent := fmt.Sprintf("/paradrop-sandbox-test-%d-oom", os.Getpid())
	box := testCgroup(t, parent, cgroup.Resources{Memory: 64 << 20})
	group := testCgroup(t, parent+"/chute", cgroup.Resources{Pids: 64})
	s := newSpec(t, "oomhog", `a=0123456789abcdef; while :; do a=$a$a; done`)
	s.CgroupPath = parent + "/chute"
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(self, daemonCommand, "hog", how)
	daemon.Stderr = os.Stderr
	in, err := daemon.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		daemon.Process.Kill()
		<-exited
	})
	// In the box before it reads the spec: what it holds and its shim are
	// charged there.
	if err := box.Add(daemon.Process.Pid); err != nil {
		daemon.Process.Kill()
		t.Fatal(err)
	}
	in.Write(spec)
	in.Close()
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	monitor := 0
	if how == "warm" && err == nil {
		monitor, _ = strconv.Atoi(strings.TrimSpace(line))
		line, err = lines.ReadString('\n')
	}
	go func() { exited <- daemon.Wait() }()
	if err != nil {
		t.Fatalf("daemon did not start the chute: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("daemon printed %q", line)
	}
	c, err := attach(t, s.StateDir)
	if err != nil {
		t.Fatalf("attach chute %d: %v", pid, err)
	}
	st := wait(t, c)
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("the daemon died (%v); the chute ended with %+v", err, st)
	case <-time.After(500 * time.Millisecond):
	}
	if st.Signal != syscall.SIGKILL.String() {
		t.Errorf("chute ended with %+v, want killed by the OOM killer", st)
	}
	if how == "warm" && gone(monitor) {
		t.Errorf("the OOM killer took the monitor %d", monitor)
	}
	if stats, err := group.Stats(); err != nil {
		t.Error(err)
	} else if stats.OOMKills == 0 {
		t.Errorf("no OOM kill counted in the chute's group; the chute ended with %+v", st)
	}
}
