package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"paradrop/cgroup"
)

// procCPU is the CPU time that process pid has used, summed over its
// threads' schedstat, which counts in nanoseconds where /proc/PID/stat
// counts in ticks of 10ms.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	var total time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // the thread has just exited
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			t.Fatalf("parse %s: %q", task, b)
		}
		total += time.Duration(ns)
	}
	return total
}

// A chute that writes lines as fast as it can, at a small CPU limit, costs
// no more than that limit (+10%) counted with its shim, which copies the
// lines into its log from the daemon's cgroup: alone, and while it also
// burns all the CPU its limit allows.
func TestLogCPUWithinBudget(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"lines only", "yes"},
		{"lines at the limit", "yes & while :; do :; done"},
	} {
		for _, how := range starters(t) {
			t.Run(how.name+"/"+tc.name, func(t *testing.T) { testLogCPU(t, how, tc.script) })
		}
	}
}

func testLogCPU(t *testing.T, how starter, script string) {
	const cpuMax = 0.1
	path := fmt.Sprintf("/paradrop-sandbox-logcpu-%d", os.Getpid())
	g := testCgroup(t, path, cgroup.Resources{CPUMax: cpuMax})
	s := newSpec(t, "spammer", script)
	s.CgroupPath = path
	startHow(t, how, s)
	// Under a monitor, the monitor's: it serves this chute alone here.
	shim := shimPID(t, s)
	usage := func() time.Duration {
		st, err := g.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(st.CPUUsageNs)
	}
	// Past any start-up burst.
	time.Sleep(time.Second)
	chute0, shim0, t0 := usage(), procCPU(t, shim), time.Now()
	time.Sleep(4 * time.Second)
	chute, shimCPU, wall := usage()-chute0, procCPU(t, shim)-shim0, time.Since(t0)
	cores := func(d time.Duration) float64 { return d.Seconds() / wall.Seconds() }
	t.Logf("over %v: chute %.3f cores, shim %.3f cores, sum %.3f (cpu_max %v)",
		wall.Round(time.Millisecond), cores(chute), cores(shimCPU), cores(chute+shimCPU), cpuMax)
	if sum := cores(chute + shimCPU); sum > 1.1*cpuMax {
		t.Errorf("chute and shim used %.3f cores, above 1.1 × cpu_max %v", sum, cpuMax)
	}
	if lines := logLines(t, s.LogDir); len(lines) == 0 || lines[len(lines)-1] != "stdout y" {
		t.Errorf("the chute's output is not in its log")
	}
}

// A chute that has spent its log budget and exits still has all its
// output logged: what is left in the pipes is copied at once.
func TestLogDrainedAtExit(t *testing.T) {
	path := fmt.Sprintf("/paradrop-sandbox-logdrain-%d", os.Getpid())
	testCgroup(t, path, cgroup.Resources{CPUMax: 0.01})
	s := newSpec(t, "drained", "yes | head -c 80000; echo END")
	s.CgroupPath = path
	s.LogMaxBytes = 8 << 20 // all of it in current.log
	start := time.Now()
	st, lines := runScript(t, s)
	if st.Code != 0 || len(lines) == 0 || lines[len(lines)-1] != "stdout END" {
		t.Fatalf("exit %+v after %v, %d lines, last %q; want the last line END",
			st, time.Since(start).Round(time.Millisecond), len(lines), lines[max(0, len(lines)-1):])
	}
	if n := len(lines); n != 40001 {
		t.Errorf("%d lines logged, want 40001", n)
	}
	// Held back by the budget, the last 64 KiB would take over 5 s at
	// this limit, and the shim would give up waiting for them.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the chute's end took %v to be recorded: its output was copied at the budget's pace", took)
	}
}
