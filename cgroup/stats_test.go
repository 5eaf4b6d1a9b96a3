package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

// openFDs counts the test process's open files.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A StatsReader says what Group.Stats says, reads the files anew each
// time (limits set since, processes started since), follows its path to a
// group removed and made again, and releases its files on Close.
func TestStatsReader(t *testing.T) {
	parent := testParent(t)
	path := filepath.Join(parent, "reader")
	g := open(t, path, Resources{Memory: 64 << 20, Pids: 9})
	startIn(t, g, sh("read x; sleep 100"))
	r := g.StatsReader()
	got, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The shell may still be running (CPU) or faulting pages in (memory).
	if got.CPUUsageNs > want.CPUUsageNs || got.MemoryUsage > want.MemoryUsage+1<<20 || got.MemoryUsage+1<<20 < want.MemoryUsage {
		t.Errorf("reader's Stats = %+v, Group.Stats %+v", got, want)
	}
	got.CPUUsageNs, got.MemoryUsage = want.CPUUsageNs, want.MemoryUsage
	if got != want || got.MemoryLimit != 64<<20 || got.PidsLimit != 9 || got.Pids != 1 {
		t.Errorf("reader's Stats = %+v, Group.Stats %+v", got, want)
	}

	if err := g.Set(Resources{Memory: 32 << 20, Pids: 5}); err != nil {
		t.Fatal(err)
	}
	startIn(t, g, sh("read x; sleep 100"))
	if s, err := r.Stats(); err != nil || s.MemoryLimit != 32<<20 || s.PidsLimit != 5 || s.Pids != 2 {
		t.Errorf("after Set and a second process: reader's Stats = %+v, %v; want limits 32 MiB and 5, 2 pids", s, err)
	}

	// The chute restarts: its group goes and comes back under the path.
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	s, err := r.Stats()
	if Detect() == V1 && err == nil {
		t.Errorf("removed group: reader's Stats = %+v, want an error", s)
	}
	if Detect() == V2 && (err != nil || s != Stats{}) {
		t.Errorf("removed group: reader's Stats = %+v, %v; want nothing, as Group.Stats", s, err)
	}
	open(t, path, Resources{Memory: 16 << 20, Pids: 3})
	if s, err := r.Stats(); err != nil || s.MemoryLimit != 16<<20 || s.PidsLimit != 3 || s.Pids != 0 {
		t.Errorf("group made again: reader's Stats = %+v, %v; want the new group's limits, no pids", s, err)
	}
	held := 0
	for _, fd := range r.fds {
		if fd >= 0 {
			held++
		}
	}
	if Detect() == V1 && held != len(v1StatFiles) {
		t.Errorf("the reader holds %d files, want its %d", held, len(v1StatFiles))
	}
	fds := openFDs(t)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t); n != fds-held {
		t.Errorf("%d files open after Close, %d before: want %d fewer", n, fds, held)
	}
}

// The v2 files, in the kernel's format, on a fake hierarchy: this host's
// v2 hierarchy may have no controllers. Absent files read as 0 (a
// controller not enabled), as cgroup2's Stat has them.
func TestV2StatsFormat(t *testing.T) {
	full := map[string]string{
		"cpu.stat":       "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 0\n",
		"memory.current": "5242880\n",
		"memory.max":     "16777216\n",
		"memory.events":  "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
		"pids.current":   "3\n",
		"pids.max":       "max\n",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  Stats
		err   bool
	}{
		{"all", full, Stats{CPUUsageNs: 1234000, MemoryUsage: 5 << 20, MemoryLimit: 16 << 20, Pids: 3, OOMKills: 2}, false},
		{"limits", with(map[string]string{"memory.max": "max\n", "pids.max": "12\n"}),
			Stats{CPUUsageNs: 1234000, MemoryUsage: 5 << 20, Pids: 3, PidsLimit: 12, OOMKills: 2}, false},
		{"no memory or pids controller", with(map[string]string{"memory.current": "", "memory.max": "", "memory.events": "", "pids.current": "", "pids.max": ""}),
			Stats{CPUUsageNs: 1234000}, false},
		{"nothing", map[string]string{}, Stats{}, false},
		{"bad number", with(map[string]string{"pids.current": "three\n"}), Stats{}, true},
		{"bad cpu.stat", with(map[string]string{"cpu.stat": "usage_usec lots\n"}), Stats{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newV2(t.TempDir(), "/g")
			if err := os.Mkdir(b.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, v := range tc.files {
				if err := os.WriteFile(filepath.Join(b.dir, f), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			g := &Group{path: "/g", b: b}
			r := g.StatsReader()
			defer r.Close()
			for _, read := range []struct {
				what string
				fn   func() (Stats, error)
			}{{"Group.Stats", g.Stats}, {"StatsReader.Stats", r.Stats}} {
				got, err := read.fn()
				if (err != nil) != tc.err || got != tc.want {
					t.Errorf("%s = %+v, %v; want %+v (error %v)", read.what, got, err, tc.want, tc.err)
				}
			}
		})
	}
}

// On the hybrid host's controller-less v2 hierarchy, the few files say
// what cgroup2's full Stat says.
func TestV2StatsAgreesWithCgroup2(t *testing.T) {
	g, b := hybridV2Group(t)
	startIn(t, g, sh("read x; sleep 100"))
	got, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.m.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPUUsageNs: m.CPU.UsageUsec * 1000}
	if m.Memory != nil {
		want.MemoryUsage, want.MemoryLimit = m.Memory.Usage, unlimitedAsZero(m.Memory.UsageLimit)
	}
	if m.MemoryEvents != nil {
		want.OOMKills = m.MemoryEvents.OomKill
	}
	if m.Pids != nil {
		want.Pids, want.PidsLimit = m.Pids.Current, unlimitedAsZero(m.Pids.Limit)
	}
	if got.CPUUsageNs > want.CPUUsageNs {
		t.Errorf("Stats = %+v, cgroup2 says %+v", got, want)
	}
	got.CPUUsageNs = want.CPUUsageNs
	if got != want {
		t.Errorf("Stats = %+v, cgroup2 says %+v", got, want)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
}
