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
