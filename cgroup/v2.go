package cgroup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const v2Mount = "/sys/fs/cgroup"

type v2Group struct {
	mount, path string
	dir         string
	m           *cgroup2.Manager
}

// newV2 takes the mount point so the controller-less v2 hierarchy of a
// hybrid host can be exercised in tests.
func newV2(mount, path string) *v2Group {
	// cgroup2.Load only builds a handle; it does not touch cgroupfs and
	// cannot fail for a checked path.
	m, _ := cgroup2.Load(path, cgroup2.WithMountpoint(mount))
	return &v2Group{mount: mount, path: path, dir: filepath.Join(mount, path), m: m}
}

func (g *v2Group) exists() bool {
	_, err := os.Stat(g.dir)
	return err == nil
}

// v2Unlimited stands for "max": cgroup2 writes memory limits as integers
// only, and the kernel clamps any value this large to its maximum, which
// reads back as "max".
const v2Unlimited = math.MaxInt64

func v2Resources(r Resources) *cgroup2.Resources {
	weight := r.weight()
	var quota *int64 // nil is "max"
	if q := r.quotaUs(); q > 0 {
		quota = &q
	}
	period := uint64(cpuPeriodUs)
	mem, swap := int64(v2Unlimited), int64(v2Unlimited)
	if r.Memory > 0 {
		mem, swap = r.Memory, 0
	}
	pids := int64(-1) // cgroup2 writes -1 as "max"
	if r.Pids > 0 {
		pids = r.Pids
	}
	return &cgroup2.Resources{
		CPU:    &cgroup2.CPU{Weight: &weight, Max: cgroup2.NewCPUMax(quota, &period), Cpus: r.CPUs},
		Memory: &cgroup2.Memory{Max: &mem, Swap: &swap},
		Pids:   &cgroup2.Pids{Max: pids},
	}
}

func (g *v2Group) update(r Resources) error {
	// NewManager creates the directory if needed, enables the cpu, memory
	// and pids controllers on the ancestors, and writes the limits.
	m, err := cgroup2.NewManager(g.mount, g.path, v2Resources(r))
	if err != nil {
		return err
	}
	g.m = m
	if r.CPUs == "" {
		// cgroup2 writes no empty list; written, it gives the group its
		// parent's CPUs again. No file: cpuset was never enabled here.
		err := writeControl(filepath.Join(g.dir, "cpuset.cpus"), "\n")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cpuset.cpus: %w", err)
		}
	}
	return nil
}

func (g *v2Group) add(pid int) error { return g.m.AddProc(uint64(pid)) }

func (g *v2Group) procs() ([]int, error) {
	ps, err := g.m.Procs(true)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(ps))
	for _, p := range ps {
		pids = append(pids, int(p))
	}
	sort.Ints(pids)
	return pids, nil
}

// v2StatFiles are what Stats reads on v2, the fields cgroup2's Stat
// would give it without the 20-odd other files it reads (memory.stat,
// io.stat, pressure, hugetlb...). A file that is absent (its controller
// not enabled, the group gone) reads as 0, as cgroup2's Stat has it.
var v2StatFiles = [...]string{"cpu.stat", "memory.current", "memory.max", "memory.events", "pids.current", "pids.max"}

func (g *v2Group) statFiles() ([]string, bool) {
	paths := make([]string, len(v2StatFiles))
	for i, f := range v2StatFiles {
		paths[i] = filepath.Join(g.dir, f)
	}
	return paths, true
}

func (g *v2Group) parseStats(contents [][]byte) (Stats, error) {
	var s Stats
	usec, _, err := parseKey(contents[0], "usage_usec")
	if err != nil {
		return Stats{}, fmt.Errorf("parse cpu.stat: %w", err)
	}
	s.CPUUsageNs = usec * 1000
	var limits [2]uint64
	for _, f := range [...]struct {
		i   int
		dst *uint64
	}{{1, &s.MemoryUsage}, {2, &limits[0]}, {4, &s.Pids}, {5, &limits[1]}} {
		if contents[f.i] == nil {
			continue
		}
		if *f.dst, err = parseUint(contents[f.i]); err != nil {
			return Stats{}, fmt.Errorf("parse %s: %w", v2StatFiles[f.i], err)
		}
	}
	s.MemoryLimit, s.PidsLimit = unlimitedAsZero(limits[0]), unlimitedAsZero(limits[1])
	if s.OOMKills, _, err = parseKey(contents[3], "oom_kill"); err != nil {
		return Stats{}, fmt.Errorf("parse memory.events: %w", err)
	}
	return s, nil
}

func (g *v2Group) stats() (Stats, error) {
	contents, err := readStatFiles(g.statFiles())
	if err != nil {
		return Stats{}, err
	}
	return g.parseStats(contents)
}

// cpuMax reads cpu.max, "QUOTA PERIOD" with "max" for no quota.
func (g *v2Group) cpuMax() (float64, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "cpu.max"))
	if err != nil {
		return 0, err
	}
	quota, period, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if quota == "max" {
		return 0, nil
	}
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0, fmt.Errorf("parse cpu.max %q", b)
	}
	return float64(q) / float64(p), nil
}

// reclaim uses memory.reclaim (kernel 5.19+), which cgroup2 does not wrap.
// The kernel answers EAGAIN when it reclaimed less than asked; usage may
// still fall as writeback completes, so retry a few times.
func (g *v2Group) reclaim(ctx context.Context, target int64) error {
	current := filepath.Join(g.dir, "memory.current")
	delay := 10 * time.Millisecond
	for try := 0; ; try++ {
		usage, err := readInt(current)
		if err != nil {
			return err
		}
		if usage <= target {
			return nil
		}
		if try == 4 {
			return fmt.Errorf("usage %d above %d: %w", usage, target, ErrCannotReclaim)
		}
		err = writeControl(filepath.Join(g.dir, "memory.reclaim"), strconv.FormatInt(usage-target, 10))
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			return err
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return err
		}
		delay *= 2
	}
}

// limitDevices attaches a BPF device filter built by cgroup2 from rules,
// then detaches those attached before: a device must pass every filter of
// the group, so an old one would keep denying what the new one allows.
// Until the old ones are gone, both apply, so no device is ever allowed
// that neither the old nor the new rules allow.
func (g *v2Group) limitDevices(rules []specs.LinuxDeviceCgroup) error {
	dir, err := unix.Open(g.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	old, err := link.QueryPrograms(link.QueryOptions{Target: dir, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return err
	}
	if err := g.m.Update(&cgroup2.Resources{Devices: rules}); err != nil {
		return err
	}
	for _, p := range old.Programs {
		if err := detachDeviceFilter(dir, p.ID); err != nil {
			return fmt.Errorf("detach the old device filter: %w", err)
		}
	}
	return nil
}

func detachDeviceFilter(dir int, id ebpf.ProgramID) error {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return err
	}
	defer prog.Close()
	return link.RawDetachProgram(link.RawDetachProgramOptions{Target: dir, Program: prog, Attach: ebpf.AttachCGroupDevice})
}

// signalAll uses cgroup.kill, which kills the whole group atomically with
// respect to forks, so no freezing is needed.
func (g *v2Group) signalAll() error { return g.m.Kill() }

func (g *v2Group) delete() error { return g.m.Delete() }
