package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DaemonOOMScoreAdj is the OOM score adjustment (/proc/PID/oom_score_adj,
// -1000..1000) the daemon gives itself, and with it what it forks: its own
// Open vSwitch and the chutes' shims. A gateway out of memory should lose a
// chute, not its API and supervision: at -900 the kernel counts the daemon
// as 90% of the memory it may use (the RAM, or the limit of the cgroup
// out of memory) smaller than it is, so it picks any chute first. It is not
// -1000, which would make the daemon unkillable: a runaway daemon holding
// more than 90% of that memory beyond the biggest chute still goes.
//
// The shims keep it too: a shim is small and fixed in size, and killing
// one frees little while it ends its chute anyway (its parent-death
// signal) and loses the chute's exit status and the rest of its log.
const DaemonOOMScoreAdj = -900

// ProtectFromOOM sets the calling process's OOM score adjustment to
// DaemonOOMScoreAdj, for it and for every process it forks afterwards
// (the score is inherited across fork and exec): the daemon calls it
// first thing, before it starts OVS or a shim. Lowering a score needs
// CAP_SYS_RESOURCE; without it (some containers drop it) the error wraps
// os.ErrPermission, the daemon keeps its score and its chutes are started
// that much above it instead (see chuteOOMScoreAdj).
func ProtectFromOOM() error {
	return writeOOMScoreAdj("self", DaemonOOMScoreAdj)
}

// chuteOOMScoreAdj is the score a chute gets from a shim whose score is
// shim: as far above it as the daemon lowered its own, so 0, the normal
// score, when the daemon could, and the chute still goes first when it
// could not.
func chuteOOMScoreAdj(shim int) int {
	return min(shim-DaemonOOMScoreAdj, 1000)
}

// setChuteOOMScore gives a chute's init, cloned with the shim's score, its
// own before it runs anything of the chute's. The shim writes it: with
// CAP_SYS_RESOURCE the kernel also raises the floor the process may later
// lower its score to (oom_score_adj_min) to it, so that the chute cannot
// take the daemon's protection back for itself.
func setChuteOOMScore(pid int) error {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return fmt.Errorf("read own OOM score adjustment: %w", err)
	}
	shim, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("read own OOM score adjustment: %w", err)
	}
	return writeOOMScoreAdj(strconv.Itoa(pid), chuteOOMScoreAdj(shim))
}

func writeOOMScoreAdj(pid string, adj int) error {
	if err := os.WriteFile("/proc/"+pid+"/oom_score_adj", []byte(strconv.Itoa(adj)), 0); err != nil {
		return fmt.Errorf("set OOM score adjustment of %s to %d: %w", pid, adj, err)
	}
	return nil
}
