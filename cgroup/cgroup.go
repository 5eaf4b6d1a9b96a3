// Package cgroup owns the chutes' control groups: it creates one group per
// chute, applies its CPU, memory and process limits, moves the chute's
// processes in, reports usage, and kills and removes the group when the chute
// goes away.
//
// Both cgroup v1 (including the hybrid layout, where the controllers still
// live on v1 hierarchies) and the unified v2 hierarchy are supported behind
// one Group type; the kernel-facing work is done by
// github.com/containerd/cgroups/v3.
package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mode is the cgroup layout of the host.
type Mode int

const (
	// V1 is the legacy layout, one hierarchy per controller. A hybrid host
	// counts as V1 because its controllers are bound to the v1 hierarchies.
	V1 Mode = iota + 1
	// V2 is the unified hierarchy.
	V2
)

func (m Mode) String() string {
	switch m {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Detect reports the host's cgroup layout.
func Detect() Mode {
	if cgroups.Mode() == cgroups.Unified {
		return V2
	}
	return V1
}

// Resources are the limits of one group. The zero value means no limits and
// the default CPU weight.
type Resources struct {
	// CPUWeight is the relative CPU share with cgroup v2 semantics: 1..10000,
	// 0 meaning the default of 100. On v1 it becomes cpu.shares.
	CPUWeight uint64
	// CPUMax caps CPU time in cores (0.5 = half a core per 100ms period);
	// 0 is unlimited.
	CPUMax float64
	// Memory caps memory in bytes; 0 is unlimited. On v2 a limit also
	// forbids swap, so the limit cannot be dodged by swapping out.
	Memory int64
	// Pids caps the number of processes and threads; 0 is unlimited.
	Pids int64
	// CPUs confines the group to these CPUs (cpuset.cpus, the kernel's
	// list syntax: "0", "0-1", "0,2"); "" is every CPU of its parent.
	CPUs string
}

const (
	defaultWeight = 100
	maxWeight     = 10000
	cpuPeriodUs   = 100000
	// The kernel refuses CFS quotas below 1ms.
	minQuotaUs = 1000
	// The kernel's largest CFS quota (MAX_BW in kernel/sched/core.c).
	maxQuotaUs = 1<<44 - 1
)

// Validate reports a limit the kernel would refuse, so that callers can
// refuse it when it is asked for rather than when a group is made.
func (r Resources) Validate() error {
	switch {
	case r.CPUWeight > maxWeight:
		return fmt.Errorf("invalid resources: cpu weight %d out of range 1..%d", r.CPUWeight, maxWeight)
	case math.IsNaN(r.CPUMax) || math.IsInf(r.CPUMax, 0) || r.CPUMax < 0:
		return fmt.Errorf("invalid resources: cpu max %v must be a non-negative number of cores", r.CPUMax)
	case r.CPUMax > 0 && r.CPUMax*cpuPeriodUs < minQuotaUs:
		return fmt.Errorf("invalid resources: cpu max %v below the kernel minimum of %v cores", r.CPUMax, float64(minQuotaUs)/cpuPeriodUs)
	case r.CPUMax*cpuPeriodUs > maxQuotaUs:
		return fmt.Errorf("invalid resources: cpu max %v above the kernel maximum", r.CPUMax)
	case r.Memory < 0:
		return fmt.Errorf("invalid resources: memory %d is negative", r.Memory)
	case r.Pids < 0:
		return fmt.Errorf("invalid resources: pids %d is negative", r.Pids)
	}
	if r.CPUs != "" {
		if err := checkCPUs(r.CPUs); err != nil {
			return fmt.Errorf("invalid resources: %w", err)
		}
	}
	return nil
}

// weight returns the v2 CPU weight, applying the default.
func (r Resources) weight() uint64 {
	if r.CPUWeight == 0 {
		return defaultWeight
	}
	return r.CPUWeight
}

// quotaUs returns the CFS quota per cpuPeriodUs, or -1 for unlimited.
func (r Resources) quotaUs() int64 {
	if r.CPUMax == 0 {
		return -1
	}
	return int64(math.Round(r.CPUMax * cpuPeriodUs))
}

// Stats is a snapshot of a group's usage. Limits of 0 mean unlimited.
type Stats struct {
	CPUUsageNs  uint64
	MemoryUsage uint64
	MemoryLimit uint64
	Pids        uint64
	PidsLimit   uint64
	OOMKills    uint64
}

// unlimitedAsZero maps the kernel's various "no limit" values (v1's
// 9223372036854771712, v2's "max" read as MaxUint64) to 0.
func unlimitedAsZero(v uint64) uint64 {
	if v >= 1<<62 {
		return 0
	}
	return v
}

var (
	// ErrNotExist is returned by Load for a group that does not exist.
	ErrNotExist = fmt.Errorf("cgroup does not exist: %w", fs.ErrNotExist)
	// ErrCannotReclaim is returned by Reclaim when usage stays above the
	// target, typically because the memory is anonymous and there is no swap.
	ErrCannotReclaim = errors.New("cannot reclaim memory down to target")
)

// backend is one cgroup version's implementation of a Group.
type backend interface {
	exists() bool
	update(r Resources) error
	add(pid int) error
	procs() ([]int, error)
	stats() (Stats, error)
	// statFiles names the files stats reads (see stats.go), and whether
	// an absent one reads as nil rather than failing; parseStats makes
	// Stats of their contents.
	statFiles() (paths []string, optional bool)
	parseStats(contents [][]byte) (Stats, error)
	// cpuMax is the CPU limit in cores, 0 for none.
	cpuMax() (float64, error)
	reclaim(ctx context.Context, target int64) error
	// limitDevices applies the devices controller's rules.
	limitDevices(rules []specs.LinuxDeviceCgroup) error
	// signalAll sends SIGKILL to every process once.
	signalAll() error
	delete() error
}

// Group is one control group, named by its path relative to the cgroup
// root (such as "/paradrop/NAME").
type Group struct {
	path string
	b    backend
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("invalid cgroup path %q: want a clean absolute path below the root", p)
	}
	return nil
}

func newBackend(p string) (backend, error) {
	if Detect() == V2 {
		return newV2(v2Mount, p), nil
	}
	return newV1(p)
}

// Open creates the group at path, or takes over an existing one, and applies r.
func Open(path string, r Resources) (*Group, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("open cgroup %q: %w", path, err)
	}
	b, err := newBackend(path)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %q: %w", path, err)
	}
	existed := b.exists()
	if err := b.update(r); err != nil {
		// Do not leave behind a half-configured group that we created.
		if !existed {
			_ = b.delete()
		}
		return nil, fmt.Errorf("open cgroup %q: %w", path, err)
	}
	return &Group{path: path, b: b}, nil
}

// Load returns the existing group at path, or an error wrapping ErrNotExist.
func Load(path string) (*Group, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	b, err := newBackend(path)
	if err != nil {
		return nil, fmt.Errorf("load cgroup %q: %w", path, err)
	}
	if !b.exists() {
		return nil, fmt.Errorf("load cgroup %q: %w", path, ErrNotExist)
	}
	return &Group{path: path, b: b}, nil
}

// List returns the sorted names of the groups directly below parent, such as
// chutes left over from a previous run. A missing parent has no children.
func List(parent string) ([]string, error) {
	if err := checkPath(parent); err != nil {
		return nil, err
	}
	var dirs []string
	if Detect() == V2 {
		dirs = []string{path.Join(v2Mount, parent)}
	} else {
		for _, c := range v1Controllers {
			dirs = append(dirs, path.Join(v1Mount, c, parent))
		}
	}
	// On v1 a group may be half-created, so take the union of hierarchies.
	seen := map[string]bool{}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list cgroup %q: %w", parent, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				seen[e.Name()] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Path returns the group's path relative to the cgroup root.
func (g *Group) Path() string { return g.path }

// Set changes the group's limits in place; processes keep running. Lowering
// Memory below current usage fails unless the kernel can reclaim enough;
// call Reclaim first.
func (g *Group) Set(r Resources) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("set cgroup %q: %w", g.path, err)
	}
	if err := g.b.update(r); err != nil {
		return fmt.Errorf("set cgroup %q: %w", g.path, err)
	}
	return nil
}

// Add moves the process pid, with all its threads, into the group.
func (g *Group) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add to cgroup %q: invalid pid %d", g.path, pid)
	}
	if err := g.b.add(pid); err != nil {
		return fmt.Errorf("add pid %d to cgroup %q: %w", pid, g.path, err)
	}
	return nil
}

// Procs returns the sorted pids of the processes in the group and below it.
func (g *Group) Procs() ([]int, error) {
	pids, err := g.b.procs()
	if err != nil {
		return nil, fmt.Errorf("procs of cgroup %q: %w", g.path, err)
	}
	return pids, nil
}

// Stats returns the group's current usage and limits.
func (g *Group) Stats() (Stats, error) {
	s, err := g.b.stats()
	if err != nil {
		return Stats{}, fmt.Errorf("stats of cgroup %q: %w", g.path, err)
	}
	return s, nil
}

// CPUMax returns the group's CPU limit in cores, 0 if it has none, as set
// now: a chute's policy may have changed it since the group was opened.
func (g *Group) CPUMax() (float64, error) {
	c, err := g.b.cpuMax()
	if err != nil {
		return 0, fmt.Errorf("cpu limit of cgroup %q: %w", g.path, err)
	}
	return c, nil
}

// Reclaim asks the kernel to bring the group's memory usage down to at most
// target bytes, so that a lower Memory limit can then be set without failing
// or OOM-killing. The group's limits are unchanged afterwards. It returns an
// error wrapping ErrCannotReclaim if usage stays above target. On v1 the
// limit is temporarily lowered, so a process allocating meanwhile may be
// OOM-killed at that lower limit, as it would be under the new limit.
func (g *Group) Reclaim(ctx context.Context, target int64) error {
	if target < 0 {
		return fmt.Errorf("reclaim cgroup %q: negative target %d", g.path, target)
	}
	if err := g.b.reclaim(ctx, target); err != nil {
		return fmt.Errorf("reclaim cgroup %q: %w", g.path, err)
	}
	return nil
}

// How long Kill waits for the group to empty: a SIGKILLed process only
// leaves once it has released its memory, which is quick unless it is stuck
// in the kernel.
const killTimeout = 5 * time.Second

// Kill sends SIGKILL to every process in the group, freezing the group
// meanwhile where the kernel allows so forks cannot escape, and waits until
// the group is empty.
func (g *Group) Kill() error {
	// Most often nothing is left (a chute's processes die with its pid 1):
	// freezing and thawing an empty group would cost 0.3 ms for nothing.
	if pids, err := g.b.procs(); err == nil && len(pids) == 0 {
		return nil
	}
	deadline := time.Now().Add(killTimeout)
	for {
		if err := g.b.signalAll(); err != nil {
			return fmt.Errorf("kill cgroup %q: %w", g.path, err)
		}
		// Poll a little before signalling again, which catches any process
		// that entered the group between listing and signalling.
		for range 10 {
			pids, err := g.b.procs()
			if err != nil {
				return fmt.Errorf("kill cgroup %q: %w", g.path, err)
			}
			if len(pids) == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kill cgroup %q: pids %v still alive after %v", g.path, pids, killTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Delete removes the group. It fails while processes remain: call Kill first.
func (g *Group) Delete() error {
	if err := g.b.delete(); err != nil {
		return fmt.Errorf("delete cgroup %q: %w", g.path, err)
	}
	return nil
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// writeControl writes data to the cgroupfs file at path as one write.
// Unlike os.WriteFile it neither creates nor truncates: truncating a
// cgroupfs file is a setattr, under a lock of its whole hierarchy, which
// was a third of the CPU of the 14 moves of SpawnIn's visit on v1.
func writeControl(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readInt reads a cgroupfs file holding one integer.
func readInt(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var v int64
	if _, err := fmt.Sscan(string(b), &v); err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return v, nil
}
