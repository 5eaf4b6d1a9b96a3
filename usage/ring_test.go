package usage

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
)

// fullSample is a sample of a gateway with chutes chutes, each with two
// interfaces (its veth's end and its OVS port), as the daemon takes it.
func fullSample(t int64, chutes int) Sample {
	smp := Sample{T: t, CPU: float64(t % 100), MemUsed: uint64(t), Ifaces: map[string]Rate{}, Chutes: map[string]ChuteSample{}}
	for c := range chutes {
		smp.Chutes[fmt.Sprintf("web%03d", c)] = ChuteSample{CPU: float64(c), Mem: uint64(t + int64(c)), Pids: 2}
		for _, kind := range []string{"veth", "tap"} {
			smp.Ifaces[fmt.Sprintf("%s%08x", kind, c)] = Rate{RxBps: float64(t), TxBps: float64(c)}
		}
	}
	return smp
}

// Fifteen minutes of samples of a 30-chute gateway fit in the daemon's
// budget (16 MiB for all it holds): as maps they took 10.7 MiB.
func TestRingMemory(t *testing.T) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	r := newRing(int(Recent / Interval))
	for i := range int(Recent/Interval) + 10 {
		r.add(fullSample(int64(i)*1000, 30))
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := float64(m1.HeapAlloc-m0.HeapAlloc) / (1 << 20)
	t.Logf("ring of %d samples of 30 chutes: %.2f MiB", r.len(), held)
	if held > 4 {
		t.Errorf("the ring holds %.2f MiB, want at most 4", held)
	}
	runtime.KeepAlive(r)
}

// The ring gives back what it was given, oldest first, as chutes and
// interfaces come and go.
func TestRingRoundTrip(t *testing.T) {
	r := newRing(4)
	var want []Sample
	for i, chutes := range []int{0, 2, 2, 3, 1, 1} {
		smp := fullSample(int64(i), chutes)
		r.add(smp)
		want = append(want, smp)
	}
	want = want[len(want)-4:]
	if r.len() != 4 {
		t.Fatalf("len %d, want 4", r.len())
	}
	for i := range r.len() {
		if got := r.at(i).sample(); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("sample %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}
