package cgroup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const v1Mount = "/sys/fs/cgroup"

// v1Controllers are the hierarchies a chute's group spans; the last three,
// freezer, devices and cpuset, are optional.
var v1Controllers = []string{"cpu", "cpuacct", "memory", "pids", "freezer", "devices", "cpuset"}

type v1Group struct {
	path string
	subs []cgroup1.Subsystem
	// cg is nil until the group exists.
	cg cgroup1.Cgroup
	// hasFreezer: without it Kill can only race forks with repeated signals.
	hasFreezer bool
	// devices is nil when the host has no devices hierarchy.
	devices cgroup1.Subsystem
	// hasCpuset: without it a CPU list cannot be enforced.
	hasCpuset bool
}

// v1Hierarchy lists the controllers we use rather than cgroup1.Default's
// all-mounted ones: the others are not ours to manage. cpuset's group
// gets cpus and mems copied from its parent when cgroup1 makes it (the
// kernel refuses a process into a cpuset without them).
func v1Hierarchy() ([]cgroup1.Subsystem, error) {
	subs := []cgroup1.Subsystem{
		cgroup1.NewCpu(v1Mount),
		cgroup1.NewCpuacct(v1Mount),
		// We report neither swap nor kernel memory, and newer kernels drop
		// some of those files; ignoring them keeps Stat from failing.
		cgroup1.NewMemory(v1Mount, cgroup1.OptionalSwap(), cgroup1.IgnoreModules("kmem", "kmem.tcp")),
		cgroup1.NewPids(v1Mount),
	}
	for _, s := range subs {
		if _, err := os.Lstat(filepath.Join(v1Mount, string(s.Name()))); err != nil {
			return nil, fmt.Errorf("cgroup v1 controller %s not mounted: %w", s.Name(), err)
		}
	}
	for _, opt := range []cgroup1.Subsystem{cgroup1.NewFreezer(v1Mount), cgroup1.NewDevices(v1Mount), cgroup1.NewCpuset(v1Mount)} {
		if _, err := os.Lstat(filepath.Join(v1Mount, string(opt.Name()))); err == nil {
			subs = append(subs, opt)
		}
	}
	return subs, nil
}

func newV1(path string) (*v1Group, error) {
	subs, err := v1Hierarchy()
	if err != nil {
		return nil, err
	}
	g := &v1Group{path: path, subs: subs}
	for _, s := range subs {
		switch s.Name() {
		case cgroup1.Freezer:
			g.hasFreezer = true
		case cgroup1.Devices:
			g.devices = s
		case cgroup1.Cpuset:
			g.hasCpuset = true
		}
	}
	if g.exists() {
		g.cg, err = cgroup1.Load(cgroup1.StaticPath(path), cgroup1.WithHierarchy(g.hierarchy))
	}
	return g, err
}

func (g *v1Group) hierarchy() ([]cgroup1.Subsystem, error) { return g.subs, nil }

func (g *v1Group) dir(controller string) string {
	return filepath.Join(v1Mount, controller, g.path)
}

func (g *v1Group) exists() bool {
	_, err := os.Stat(g.dir("memory"))
	return err == nil
}

// v1Shares converts a v2 CPU weight to cpu.shares, where 1024 is the default.
func v1Shares(weight uint64) uint64 {
	return max(weight*1024/100, 2)
}

// v1Resources translates r; quotaCap (per cpuPeriodUs, -1 for none) is
// the tightest CFS quota of the group's ancestors, which r's is held to;
// parentCPUs, the parent's cpuset.cpus, is the group's when r names none
// ("" when the parent is yet to be made: cgroup1 copies it in then).
func v1Resources(r Resources, quotaCap int64, parentCPUs string) *specs.LinuxResources {
	shares := v1Shares(r.weight())
	quota := r.quotaUs()
	if quotaCap > 0 && quota > quotaCap {
		quota = quotaCap
	}
	period := uint64(cpuPeriodUs)
	mem := r.Memory
	if mem == 0 {
		mem = -1
	}
	res := &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: &shares, Period: &period, Quota: &quota, Cpus: cmp.Or(r.CPUs, parentCPUs)},
		Memory: &specs.LinuxMemory{Limit: &mem},
	}
	if r.Pids > 0 {
		res.Pids = &specs.LinuxPids{Limit: &r.Pids}
	}
	return res
}

func (g *v1Group) update(r Resources) error {
	// cgroup1.New creates whatever directories are missing (a group may be
	// half-created after a crash) and writes the limits, so it serves both
	// for creating and for changing a group.
	var parentCPUs string
	if b, err := os.ReadFile(filepath.Join(v1Mount, "cpuset", filepath.Dir(g.path), "cpuset.cpus")); err == nil {
		parentCPUs = strings.TrimSpace(string(b))
	}
	// A group made before cpuset was one of ours has its processes in
	// its parent's cpuset: they move into the group's as it is made.
	_, err := os.Stat(g.dir("cpuset"))
	adopt := g.hasCpuset && errors.Is(err, os.ErrNotExist) && g.exists()
	cg, err := cgroup1.New(cgroup1.StaticPath(g.path), v1Resources(r, v1QuotaCap(g.path), parentCPUs), cgroup1.WithHierarchy(g.hierarchy))
	if err != nil {
		return err
	}
	g.cg = cg
	if adopt {
		if err := g.adoptCpuset(); err != nil {
			return err
		}
	}
	if r.Pids == 0 {
		// cgroup1 only ever writes positive pid limits, so lifting one is ours.
		return writeControl(filepath.Join(g.dir("pids"), "pids.max"), "max")
	}
	return nil
}

// adoptCpuset moves the group's processes (as its memory hierarchy has
// them) into its cpuset group.
func (g *v1Group) adoptCpuset() error {
	b, err := os.ReadFile(filepath.Join(g.dir("memory"), "cgroup.procs"))
	if err != nil {
		return err
	}
	for pid := range strings.FieldsSeq(string(b)) {
		err := writeControl(filepath.Join(g.dir("cpuset"), "cgroup.procs"), pid)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("move pid %s into the cpuset: %w", pid, err)
		}
	}
	return nil
}

// v1QuotaCap is the lowest CFS quota of path's ancestors, per cpuPeriodUs,
// or -1 if none has one. v1 refuses a quota above the parent's (EINVAL)
// where v2 takes it and enforces the lower: held to the ancestors', a
// chute's limit under a limited parent (a gateway's whole box) works on
// both, with the effect it has on v2.
func v1QuotaCap(path string) int64 {
	limit := int64(-1)
	for p := filepath.Dir(path); p != "/"; p = filepath.Dir(p) {
		dir := filepath.Join(v1Mount, "cpu", p)
		q, err := readInt(filepath.Join(dir, "cpu.cfs_quota_us"))
		if err != nil || q <= 0 {
			continue
		}
		period, err := readInt(filepath.Join(dir, "cpu.cfs_period_us"))
		if err != nil || period <= 0 {
			continue
		}
		if q = q * cpuPeriodUs / period; limit < 0 || q < limit {
			limit = q
		}
	}
	return limit
}

func (g *v1Group) handle() (cgroup1.Cgroup, error) {
	if g.cg == nil {
		return nil, ErrNotExist
	}
	return g.cg, nil
}

func (g *v1Group) add(pid int) error {
	cg, err := g.handle()
	if err != nil {
		return err
	}
	return cg.AddProc(uint64(pid))
}

func (g *v1Group) procs() ([]int, error) {
	cg, err := g.handle()
	if err != nil {
		return nil, err
	}
	ps, err := cg.Processes(cgroup1.Pids, true)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(ps))
	for _, p := range ps {
		pids = append(pids, p.Pid)
	}
	sort.Ints(pids)
	return pids, nil
}

// stats reads what Stats reports from its own files. cgroup1's Stat reads
// and parses every file of every controller (memory.stat alone is 40
// lines), and the usage sampler asks for every chute every second.
// v1StatFiles are what Stats reads on v1, controller and file; the
// values of the first five, in order, then the OOM kills' file.
var v1StatFiles = [...]struct{ controller, file string }{
	{"cpuacct", "cpuacct.usage"},
	{"memory", "memory.usage_in_bytes"},
	{"memory", "memory.limit_in_bytes"},
	{"pids", "pids.current"},
	{"pids", "pids.max"},
	{"memory", "memory.oom_control"},
}

func (g *v1Group) statFiles() ([]string, bool) {
	paths := make([]string, len(v1StatFiles))
	for i, f := range v1StatFiles {
		paths[i] = filepath.Join(g.dir(f.controller), f.file)
	}
	return paths, false
}

func (g *v1Group) parseStats(contents [][]byte) (Stats, error) {
	var s Stats
	var limit uint64
	for i, dst := range []*uint64{&s.CPUUsageNs, &s.MemoryUsage, &limit, &s.Pids, &s.PidsLimit} {
		v, err := parseUint(contents[i])
		if err != nil {
			return Stats{}, fmt.Errorf("parse %s: %w", v1StatFiles[i].file, err)
		}
		*dst = v
	}
	s.MemoryLimit, s.PidsLimit = unlimitedAsZero(limit), unlimitedAsZero(s.PidsLimit)
	var err error
	if s.OOMKills, _, err = parseKey(contents[5], "oom_kill"); err != nil {
		return Stats{}, fmt.Errorf("parse memory.oom_control: %w", err)
	}
	return s, nil
}

func (g *v1Group) stats() (Stats, error) {
	if _, err := g.handle(); err != nil {
		return Stats{}, err
	}
	contents, err := readStatFiles(g.statFiles())
	if err != nil {
		return Stats{}, err
	}
	return g.parseStats(contents)
}

func (g *v1Group) cpuMax() (float64, error) {
	quota, err := readInt(filepath.Join(g.dir("cpu"), "cpu.cfs_quota_us"))
	if err != nil || quota < 0 {
		return 0, err
	}
	period, err := readInt(filepath.Join(g.dir("cpu"), "cpu.cfs_period_us"))
	if err != nil || period <= 0 {
		return 0, err
	}
	return float64(quota) / float64(period), nil
}

// reclaim steps memory.limit_in_bytes down towards target: the kernel only
// accepts a lower limit after reclaiming enough to fit under it (EBUSY
// otherwise), so each step is a bounded reclaim request that cannot
// overshoot. v1 has no memory.reclaim, and memory.force_empty only works on
// a group without tasks. The original limit is restored at the end.
func (g *v1Group) reclaim(ctx context.Context, target int64) (err error) {
	dir := g.dir("memory")
	limitFile := filepath.Join(dir, "memory.limit_in_bytes")
	orig, err := os.ReadFile(limitFile)
	if err != nil {
		return err
	}
	usage, err := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return err
	}
	if usage <= target {
		return nil
	}
	defer func() {
		if rerr := writeControl(limitFile, strings.TrimSpace(string(orig))); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore memory limit: %w", rerr))
		}
	}()
	step := max((usage-target)/4, 1<<20)
	for next := usage - step; ; next -= step {
		next = max(next, target)
		if err := writeLimitBackoff(ctx, limitFile, next); err != nil {
			if errors.Is(err, unix.EBUSY) {
				now, _ := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
				return fmt.Errorf("usage %d above %d: %w", now, next, ErrCannotReclaim)
			}
			return err
		}
		if next == target {
			return nil
		}
	}
}

// writeLimitBackoff writes a memory limit, retrying on EBUSY since usage
// may drop meanwhile (exiting processes, writeback finishing).
func writeLimitBackoff(ctx context.Context, file string, limit int64) error {
	delay := 10 * time.Millisecond
	for try := 0; ; try++ {
		err := writeControl(file, strconv.FormatInt(limit, 10))
		if err == nil || !errors.Is(err, unix.EBUSY) || try == 3 {
			return err
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return err
		}
		delay *= 2
	}
}

// limitDevices writes rules through the devices controller: cgroup1.New
// gave it no rules, so until now the group allowed every device.
func (g *v1Group) limitDevices(rules []specs.LinuxDeviceCgroup) error {
	if _, err := g.handle(); err != nil {
		return err
	}
	ctl, ok := g.devices.(interface {
		Update(path string, r *specs.LinuxResources) error
	})
	if !ok {
		return errors.New("the devices controller is not mounted")
	}
	return ctl.Update(g.path, &specs.LinuxResources{Devices: rules})
}

// signalAll freezes the group so nothing can fork, SIGKILLs everything in
// it and thaws it: frozen tasks only act on the signal once thawed.
func (g *v1Group) signalAll() error {
	cg, err := g.handle()
	if err != nil {
		return err
	}
	if g.hasFreezer {
		if err := g.freeze(); err != nil {
			return err
		}
		defer cg.Thaw()
	}
	pids, err := g.procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill pid %d: %w", pid, err)
		}
	}
	return nil
}

// freeze is cgroup1's Freeze with a bound: that one spins until FROZEN, so
// a task stuck in the kernel would hang Kill forever. A partly frozen group
// is still worth signalling; the caller retries until it is empty.
func (g *v1Group) freeze() error {
	state := filepath.Join(g.dir("freezer"), "freezer.state")
	if err := writeControl(state, "FROZEN"); err != nil {
		return err
	}
	for range 100 {
		b, err := os.ReadFile(state)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == "FROZEN" {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (g *v1Group) delete() error {
	cg, err := g.handle()
	if err != nil {
		return err
	}
	return cg.Delete()
}
