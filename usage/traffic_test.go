package usage

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"paradrop/cgroup"
)

// fakeCounters is the switch's reading of every chute at once.
type fakeCounters struct {
	calls int
	by    map[string]Traffic
}

func (f *fakeCounters) Bytes(context.Context) (map[string]Traffic, error) {
	f.calls++
	return f.by, nil
}

// A sample reads the traffic of all chutes once, and rates each sampled
// chute from its own counters; a chute the switch does not know has none.
func TestTrafficRates(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the chutes' cgroups")
	}
	parent := "/paradrop-usage-test-" + rand.Text()[:8]
	var targets []Target
	for _, name := range []string{"web", "quiet"} {
		g, err := cgroup.Open(parent+"/"+name, cgroup.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Delete() })
		targets = append(targets, Target{Name: name, Cgroup: parent + "/" + name, Data: t.TempDir()})
	}
	t.Cleanup(func() {
		if g, err := cgroup.Load(parent); err == nil {
			g.Delete()
		}
	})
	c := &fakeCounters{by: map[string]Traffic{"web": {Rx: 1000, Tx: 500}, "elsewhere": {Rx: 7, Tx: 7}}}
	s := New(Config{DataDir: t.TempDir(), Targets: func() []Target { return targets }, Counters: c})
	t0 := time.Now()
	if err := s.sample(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	c.by = map[string]Traffic{"web": {Rx: 5000, Tx: 2500}, "elsewhere": {Rx: 9, Tx: 9}}
	if err := s.sample(context.Background(), t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	smp, ok := s.Latest()
	if !ok {
		t.Fatal("no sample")
	}
	if web := smp.Chutes["web"]; web.RxBps != 2000 || web.TxBps != 1000 {
		t.Errorf("web: %+v, want 2000 B/s in and 1000 out", web)
	}
	if q, ok := smp.Chutes["quiet"]; !ok || q.RxBps != 0 || q.TxBps != 0 {
		t.Errorf("quiet: %+v (sampled %v), want sampled with no traffic", q, ok)
	}
	if _, ok := smp.Chutes["elsewhere"]; ok || c.calls != 2 {
		t.Errorf("chutes %v after %d readings of the switch; want web and quiet after 2", smp.Chutes, c.calls)
	}
}

// The sampler reads a chute's group from files it keeps open: a chute
// whose group is made again (a restart) is read from its new group, and a
// chute no longer sampled leaves no file open behind.
func TestSamplerFollowsChuteGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the chutes' cgroups")
	}
	parent := "/paradrop-usage-test-" + rand.Text()[:8]
	path := parent + "/web"
	open := func(limit int64) *cgroup.Group {
		t.Helper()
		g, err := cgroup.Open(path, cgroup.Resources{Memory: limit})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := open(32 << 20)
	t.Cleanup(func() {
		for _, p := range []string{path, parent} {
			if g, err := cgroup.Load(p); err == nil {
				g.Delete()
			}
		}
	})
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	targets := []Target{{Name: "web", Cgroup: path, Data: t.TempDir()}}
	s := New(Config{DataDir: t.TempDir(), Targets: func() []Target { return targets }})
	t0 := time.Now()
	limit := func(i int) uint64 {
		t.Helper()
		if err := s.sample(context.Background(), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		smp, _ := s.Latest()
		return smp.Chutes["web"].MemLimit
	}
	limit(0) // rates need two readings: the first records nothing
	if l := limit(1); l != 32<<20 {
		t.Fatalf("web's memory limit %d, want 32 MiB", l)
	}
	before := fds()
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	open(16 << 20)
	if l := limit(2); l != 16<<20 {
		t.Errorf("web's group made again with 16 MiB: memory limit %d", l)
	}
	if n := fds(); n != before {
		t.Errorf("%d files open after the group was made again, %d before", n, before)
	}
	targets = nil
	limit(3)
	if n := fds(); n >= before || len(s.readers) != 0 {
		t.Errorf("web no longer sampled: %d files open, %d while sampling it; readers %v", n, before, s.readers)
	}
}
