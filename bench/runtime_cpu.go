package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
)

// monitorCgroup holds the monitors of the bench's launchers, so that the
// CPU time they spend on a start can be read: a monitor is not reaped
// after a start, as a shim is, and its threads that served a chute are
// gone from /proc by then.
const monitorCgroup = benchCgroup + "-monitors"

// cpuMark is where a start's CPU time is counted from: what this process
// and its reaped children (cold shims, and through them the chutes' inits
// and commands) had used, what the monitors' cgroup had used and, for a
// start under a monitor, the chutes' cgroup (the monitor reaps those
// chutes, so their time is not this process's children's).
type cpuMark struct {
	tree      time.Duration
	monitors  time.Duration
	chutes    time.Duration
	monitorCg string // "" for none
	chuteCg   string // "" for a cold start
}

// markCPU marks the CPU used so far; monitorCg holds the launchers'
// monitors (see adoptMonitors), chuteCg is the cgroup of chutes started
// under a monitor, "" for cold starts. This process's own time is marked
// last, so that reading the cgroups is not counted as a start's.
func markCPU(monitorCg, chuteCg string) (cpuMark, error) {
	m := cpuMark{monitorCg: monitorCg, chuteCg: chuteCg}
	var err error
	if monitorCg != "" {
		if err := adoptMonitors(monitorCg); err != nil {
			return m, err
		}
		if m.monitors, err = cgroupCPU(monitorCg); err != nil {
			return m, err
		}
	}
	if chuteCg != "" {
		if m.chutes, err = cgroupCPU(chuteCg); err != nil {
			return m, err
		}
	}
	m.tree = treeCPU()
	return m, nil
}

// since waits until every cold shim started since the mark has exited and
// been reaped, and returns the CPU time used since the mark: the CPU a
// start costs on its way, which starts at once share. The time of the
// waiting itself is left out: it reads each child's command line, and
// once scanned all of /proc, at 10-20 µs of CPU per process on the host,
// which made a start dearer as the host ran more processes.
func (m cpuMark) since(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var waiting time.Duration
	for {
		var shims int
		waiting += selfTime(func() { shims = len(roleChildren(sandbox.ShimCommand)) })
		if shims == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("shims still running after the chutes exited: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	d := treeCPU() - m.tree - waiting
	if m.monitorCg != "" {
		mon, err := cgroupCPU(m.monitorCg)
		if err != nil {
			return 0, err
		}
		d += mon - m.monitors
	}
	if m.chuteCg != "" {
		ch, err := cgroupCPU(m.chuteCg)
		if err != nil {
			return 0, err
		}
		d += ch - m.chutes
	}
	return d, nil
}

func cgroupCPU(path string) (time.Duration, error) {
	g, err := cgroup.Load(path)
	if err != nil {
		return 0, err
	}
	st, err := g.Stats()
	if err != nil {
		return 0, err
	}
	return time.Duration(st.CPUUsageNs), nil
}

// treeCPU is the user and system time of this process and its reaped
// children.
func treeCPU() time.Duration {
	return rusageCPU(syscall.RUSAGE_SELF) + rusageCPU(syscall.RUSAGE_CHILDREN)
}

// selfTime returns the CPU time this process spent while f ran: f's own
// and that of the runtime's threads beside it (the garbage collector's
// workers run on idle CPUs when f allocates).
func selfTime(f func()) time.Duration {
	t0 := rusageCPU(syscall.RUSAGE_SELF)
	f()
	return rusageCPU(syscall.RUSAGE_SELF) - t0
}

// rusageCPU is the user and system time getrusage(2) reports for who.
func rusageCPU(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// adoptMonitors moves this process's monitors into the cgroup at path.
func adoptMonitors(path string) error {
	g, err := cgroup.Load(path)
	if err != nil {
		return err
	}
	for _, pid := range roleChildren(sandbox.MonitorCommand) {
		if err := g.Add(pid); err != nil {
			return fmt.Errorf("monitor %d to %s: %w", pid, path, err)
		}
	}
	return nil
}

// roleChildren lists this process's children that play role.
func roleChildren(role string) []int {
	kids, _ := childrenWith(os.Getpid(), "\x00"+role+"\x00")
	return kids
}
