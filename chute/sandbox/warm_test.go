package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/cgroup"
	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/pid1"
)

// children returns the pids of pid's children whose command line has
// word.
func children(pid int, word string) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		_, after, _ := bytes.Cut(stat, []byte(") "))
		f := strings.Fields(string(after))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) || f[0] == "Z" {
			continue
		}
		if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && strings.Contains(string(cl), word) {
			kids = append(kids, p)
		}
	}
	return kids
}

// warmMonitor returns the pid of l's monitor once it has started a chute
// that gains by a warm init (a monitor makes none before).
func warmMonitor(t *testing.T, l *sandbox.Launcher) int {
	t.Helper()
	mon := monitorPid(t, l)
	s := newSpec(t, "prime", `true`)
	if st := wait(t, startWith(t, l, s)); st.Code != 0 {
		t.Fatalf("priming chute exited %+v", st)
	}
	return mon
}

// warmPid waits for the monitor to have a warm init and returns its pid.
func warmPid(t *testing.T, monitor int) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if kids := children(monitor, pid1.WarmCommand); len(kids) == 1 {
			return kids[0]
		} else if len(kids) > 1 {
			t.Fatalf("monitor %d has %d warm inits: %v", monitor, len(kids), kids)
		}
	}
	t.Fatalf("monitor %d made no warm init in 10s", monitor)
	return 0
}

// TestWarmInitBecomesTheChute: a chute started under a monitor is the warm
// init the monitor had ready, and has everything a cold start gives: its
// uid map, its cgroup (as the host sees it, and as its cgroup namespace's
// root), a network namespace with lo up and the chute sysctls, the
// capabilities and seccomp filter of a cold start (the same script run
// cold prints the same), its hostname and ids; and the monitor makes the
// next warm init.
func TestWarmInitBecomesTheChute(t *testing.T) {
	if cgroup.Detect() != cgroup.V1 {
		t.Skip("warm inits serve chutes with a cgroup on v1 only")
	}
	path := fmt.Sprintf("/paradrop-sandbox-test-%d-warm", os.Getpid())
	testCgroup(t, path, cgroup.Resources{Pids: 64})
	const script = `cat /proc/self/uid_map /proc/self/gid_map
		grep -E ':(pids|memory):' /proc/self/cgroup | sort
		ip -4 addr show dev lo | grep -o 'inet [0-9./]*'
		cat /sys/class/net/lo/operstate
		echo port_start $(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)
		ls /sys/class/net | tr '\n' ' '; echo
		grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
		hostname; id -u; id -g; echo $$
		echo ready
		[ -z "$HOLD" ] || exec sleep 1000`
	s := newSpec(t, "warm", script)
	s.CgroupPath = path
	s.HostUID, s.HostGID = hostIDBase+7, hostIDBase+9

	cold := s
	cold.StateDir, cold.LogDir = s.StateDir+"-cold", s.LogDir+"-cold"
	_, want := runScript(t, cold)

	l := newLauncher(t, "")
	mon := warmMonitor(t, l)
	warm := warmPid(t, mon)
	s.Env = []string{"HOLD=1"}
	c := startWith(t, l, s)
	if c.Pid() != warm {
		t.Fatalf("chute is pid %d, not the warm init %d", c.Pid(), warm)
	}
	waitForLog(t, s.LogDir, "ready")
	// As the host sees it.
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, ctrl := range []string{"pids", "memory"} {
		if !strings.Contains(string(cg), ":"+ctrl+":"+path+"\n") {
			t.Errorf("chute's %s cgroup, as the host sees it, is not %s:\n%s", ctrl, path, cg)
		}
	}
	if st := procStatus(t, c.Pid()); !strings.HasPrefix(st["Uid"], strconv.Itoa(int(s.HostUID))+"\t") {
		t.Errorf("chute's host uid: %q, want %d", st["Uid"], s.HostUID)
	}
	got := logLines(t, s.LogDir)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("from the warm init, the chute printed\n%s\nfrom a cold start\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var norm []string
	for _, line := range got {
		norm = append(norm, strings.Join(strings.Fields(line), " "))
	}
	for _, line := range []string{"stdout inet 127.0.0.1/8", "stdout unknown", "stdout port_start 0", "stdout 0 200007 65536", "stdout 0 200009 65536", "stdout Seccomp: 2", "stdout 1"} {
		if !slices.Contains(norm, line) {
			t.Errorf("chute did not print %q", line)
		}
	}
	if next := warmPid(t, mon); next == warm {
		t.Errorf("no new warm init after the start")
	}
}

// TestWarmChuteHasNoPowerOverItsLinks: the network namespace of a chute
// from a warm init is its own user namespace's (the warm init's), and yet
// without NET_ADMIN or NET_RAW the chute can change nothing of it, as a
// chute in the daemon's namespace could not: not its links, addresses or
// state, not its sysctls (the kernel would let the namespace owner's root
// write them; /proc/sys is read-only), not through a user namespace of its
// own, not by mounting a proc of its own. With NET_ADMIN (here with the
// daemon's eth0 moved in) it changes its links, and still not the rest.
// A chute joining the daemon's namespace without those is not given a
// warm init (moving its eth0 would cost more than the warm init saves).
func TestWarmChuteHasNoPowerOverItsLinks(t *testing.T) {
	const script = `
		/probe ` + probeCommand + ` rawping 127.0.0.1
		ip link set $IF mtu 1400 2>&1 && echo mtu set
		ip addr add 198.51.100.99/24 dev $IF 2>&1 && echo address added
		ip link set $IF down 2>&1 && echo link down
		unshare -r -n true 2>&1 && echo unshared
		(echo 1 > /proc/sys/net/ipv4/ip_forward) 2>/dev/null && echo sysctl written
		mount -t proc proc /tmp 2>/dev/null && echo proc mounted
		cat /proc/sys/net/ipv4/ip_forward`
	const denied = "raw socket: operation not permitted|ip: SIOCSIFMTU: Operation not permitted|ip: RTNETLINK answers: Operation not permitted|" +
		"ip: SIOCSIFFLAGS: Operation not permitted|unshare: unshare(0x50000000): Operation not permitted|0"
	l := newLauncher(t, "")
	mon := warmMonitor(t, l)
	for _, tc := range []struct {
		caps   []string
		joined bool // the daemon's namespace, with its eth0
		warm   bool
		want   string
	}{
		{nil, false, true, denied},
		{[]string{"NET_ADMIN"}, true, true, "raw socket: operation not permitted|mtu set|address added|link down|unshare: unshare(0x50000000): Operation not permitted|0"},
		{nil, true, false, denied},
	} {
		t.Run(fmt.Sprint(tc.caps, tc.joined), func(t *testing.T) {
			s := newSpec(t, "warmnet", script)
			installProbe(t, s.Rootfs)
			s.Caps, s.Env = tc.caps, []string{"IF=lo"}
			if tc.joined {
				s.NetNS, s.Env = newChuteNet(t).chute.NetNS, []string{"IF=eth0"}
			}
			warm := warmPid(t, mon)
			c := startWith(t, l, s)
			if (c.Pid() == warm) != tc.warm {
				t.Fatalf("chute is pid %d, the warm init %d: want warm %v", c.Pid(), warm, tc.warm)
			}
			wait(t, c)
			var got []string
			for _, line := range logLines(t, s.LogDir) {
				got = append(got, strings.TrimPrefix(line, "stdout "))
			}
			if strings.Join(got, "|") != tc.want {
				t.Errorf("chute printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.ReplaceAll(tc.want, "|", "\n"))
			}
			if tc.joined && len(tc.caps) == 0 {
				eth0, addrs := link(t, s.NetNS, "eth0")
				if eth0.Attrs().MTU != 1500 || len(addrs) != 1 {
					t.Errorf("eth0 changed by a chute without NET_ADMIN: mtu %d, addresses %v", eth0.Attrs().MTU, addrs)
				}
			}
		})
	}
}

// TestWarmInitOutOfAChutesReach: a hostile chute (root in its namespaces)
// that kills whatever it can and looks for other processes cannot reach
// the warm init made after it, which then serves the next chute.
func TestWarmInitOutOfAChutesReach(t *testing.T) {
	l := newLauncher(t, "")
	mon := warmMonitor(t, l)
	warmPid(t, mon)
	hostile := newSpec(t, "hostile", `ls /proc | grep -cE '^[0-9]+$'; echo ready; while :; do kill -9 -1 2>/dev/null; sleep 0.05; done`)
	startWith(t, l, hostile)
	waitForLog(t, hostile.LogDir, "ready")
	next := warmPid(t, mon)
	time.Sleep(300 * time.Millisecond) // the hostile chute's kills go on
	if gone(next) {
		t.Fatalf("the warm init %d was killed", next)
	}
	if got := logLines(t, hostile.LogDir); got[0] != "stdout 2" && got[0] != "stdout 3" {
		t.Errorf("the hostile chute sees %s processes, want only its own (sh, ls, grep)", got[0])
	}
	s := newSpec(t, "after", `echo $$; cat /proc/self/uid_map`)
	c := startWith(t, l, s)
	if c.Pid() != next {
		t.Errorf("next chute is pid %d, not the warm init %d", c.Pid(), next)
	}
	if st := wait(t, c); st.Code != 0 {
		t.Errorf("next chute exited %+v", st)
	}
	if got := strings.Join(logLines(t, s.LogDir), "|"); got != "stdout 1|stdout          0     200000      65536" {
		t.Errorf("next chute printed %q", got)
	}
}

// TestWarmInitEnds: a monitor that exits (no chute, no launcher) or is
// killed leaves no warm init behind.
func TestWarmInitEnds(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		l := sandbox.NewLauncher("", filepath.Join(t.TempDir(), "monitor"), nil)
		mon := warmMonitor(t, l)
		killAtEnd(t, mon)
		warm := warmPid(t, mon)
		l.Close()
		waitGone(t, mon, "monitor")
		waitGone(t, warm, "warm init")
	})
	t.Run("kill", func(t *testing.T) {
		l := newLauncher(t, "")
		mon := warmMonitor(t, l)
		warm := warmPid(t, mon)
		syscall.Kill(mon, syscall.SIGKILL)
		waitGone(t, warm, "warm init")
	})
}

// TestWarmInitKilledBeforeItsStart: a warm init that died before its
// assignment costs nothing but itself: the chute is cloned instead and
// runs, and the next start has a warm init again.
func TestWarmInitKilledBeforeItsStart(t *testing.T) {
	l := newLauncher(t, "")
	mon := warmMonitor(t, l)
	warm := warmPid(t, mon)
	syscall.Kill(warm, syscall.SIGKILL)
	s := newSpec(t, "afterkill", `echo up`)
	c := startWith(t, l, s)
	if st := wait(t, c); st.Code != 0 || strings.Join(logLines(t, s.LogDir), "|") != "stdout up" {
		t.Errorf("exit %+v, output %q", st, logLines(t, s.LogDir))
	}
	next := warmPid(t, mon)
	s2 := newSpec(t, "afterkill2", `echo up`)
	if c := startWith(t, l, s2); c.Pid() != next {
		t.Errorf("second chute is pid %d, not the warm init %d", c.Pid(), next)
	}
}

// TestLauncherHungStart: a start whose init never answers (stopped here
// by the test monitor's hook between its clone and its plan) ends with
// the launcher's context: the monitor kills the init it made and lets
// the start's thread go, and the next start works.
func TestLauncherHungStart(t *testing.T) {
	for _, warm := range []bool{true, false} {
		t.Run(fmt.Sprint("warm=", warm), func(t *testing.T) {
			l := newLauncher(t, "")
			mon := warmMonitor(t, l)
			s := newSpec(t, sandbox.HangAtStart, `echo never`)
			if warm {
				warmPid(t, mon)
			} else {
				s.UserNS = false // no warm init for it
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if c, err := l.Start(ctx, s); err == nil {
				c.Signal(syscall.SIGKILL)
				t.Fatalf("a hung start succeeded")
			}
			if hung := stoppedChildren(mon); len(hung) != 0 {
				// Given up just now: its end may take a moment.
				for _, p := range hung {
					waitGone(t, p, "the hung start's init")
				}
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(s.StateDir, "shim.sock")); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the hung start left its socket")
				}
			}
			next := newSpec(t, "next", `echo up`)
			if st := wait(t, startWith(t, l, next)); st.Code != 0 {
				t.Errorf("next start: exit %+v", st)
			}
		})
	}
}

// stoppedChildren are pid's children stopped by a signal.
func stoppedChildren(pid int) []int {
	var stopped []int
	for _, p := range children(pid, "") {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if _, after, _ := bytes.Cut(stat, []byte(") ")); len(after) > 0 && after[0] == 'T' {
			stopped = append(stopped, p)
		}
	}
	return stopped
}

// TestMonitorKilledNonRootChute: a chute running as a user other than
// its root dies with its monitor too, warm or not: the change of ids its
// init makes clears the parent-death signal, which init sets again.
func TestMonitorKilledNonRootChute(t *testing.T) {
	for _, warm := range []bool{true, false} {
		t.Run(fmt.Sprint("warm=", warm), func(t *testing.T) {
			l := newLauncher(t, "")
			mon := warmMonitor(t, l)
			killAtEnd(t, mon)
			s := newSpec(t, "nonroot", `sleep 1000`)
			s.UID, s.GID = 1000, 1000
			if warm {
				warmPid(t, mon)
			} else {
				s.UserNS = false // no warm init for it
				s.UID, s.GID = hostIDBase+1000, hostIDBase+1000
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := l.Start(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Kill(c.Pid(), syscall.SIGKILL) })
			if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(t, c.Pid(), "a non-root chute of a killed monitor")
		})
	}
}

// TestNoWarmInitUntilOneServes: a monitor makes no warm init before it has
// started a chute that gains by one, so that a gateway whose chutes all
// join the daemon's network namespace (cloned there at their start) holds
// none; once such a chute started, the next is waiting.
func TestNoWarmInitUntilOneServes(t *testing.T) {
	l := newLauncher(t, "")
	mon := monitorPid(t, l)
	s := newSpec(t, "cold", `true`)
	s.UserNS = false // cloned at its start
	if st := wait(t, startWith(t, l, s)); st.Code != 0 {
		t.Fatalf("chute exited %+v", st)
	}
	// Past the pause after which a warm init would be made.
	time.Sleep(500 * time.Millisecond)
	if kids := children(mon, pid1.WarmCommand); len(kids) != 0 {
		t.Fatalf("monitor %d made warm inits %v with no chute to serve", mon, kids)
	}
	if st := wait(t, startWith(t, l, newSpec(t, "gains", `true`))); st.Code != 0 {
		t.Fatalf("chute exited %+v", st)
	}
	warmPid(t, mon)
}

// TestStartWaitsForTheWarmInitBeingMade: a start that comes while the
// monitor makes its warm init (the init is cloned, its namespaces not yet
// set up: 30 ms more here, see SlowWarmRunDir) gets that init, rather
// than a second clone made for it.
func TestStartWaitsForTheWarmInitBeingMade(t *testing.T) {
	l := newLauncher(t, "")
	mon := warmMonitor(t, l)
	for i := range 5 {
		s := newSpec(t, fmt.Sprint("early", i), `true`)
		kid := warmPid(t, mon)
		c := startWith(t, l, s)
		if c.Pid() != kid {
			t.Errorf("start %d: chute is pid %d, not the warm init %d being made", i, c.Pid(), kid)
		}
		wait(t, c)
	}
}
