package usage

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
)

// fullReading is a reading of a gateway with chutes chutes, each with two
// interfaces (its veth's end and its OVS port), with counts of the sizes
// a gateway sees: a few MiB of memory under a 16 MiB limit, a busy
// millisecond of CPU, a few packets a second.
func fullReading(t int64, chutes int) reading {
	rd := reading{gw: Sample{T: t, CPU: float64(t % 100), MemUsed: uint64(t)}, secs: 1.0003, ncpu: 2,
		ifaces: map[string]byteCount{}, chutes: map[string]chuteCount{}}
	for c := range chutes {
		rd.chutes[fmt.Sprintf("web%03d", c)] = chuteCount{cpuNs: 1_234_567 + uint64(t), rx: 1500, tx: uint64(c) * 90,
			mem: 3<<20 + uint64(t/1000%64)*4096, memLimit: 16 << 20, pids: 2, disk: 64 << 10, oomKills: uint64(c % 2)}
		for _, kind := range []string{"veth", "tap"} {
			rd.ifaces[fmt.Sprintf("%s%08x", kind, c)] = byteCount{rx: uint64(t), tx: uint64(c) * 1500}
		}
	}
	return rd
}

// Fifteen minutes of readings of a 30-chute gateway fit in the daemon's
// budget (16 MiB for all it holds): as maps of Samples they took 10.7 MiB,
// as slices of Samples' fields 3 MiB.
func TestRingMemory(t *testing.T) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	r := newRing(int(Recent / Interval))
	for i := range int(Recent/Interval) + 10 {
		r.add(fullReading(int64(i)*1000, 30))
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := float64(m1.HeapAlloc-m0.HeapAlloc) / (1 << 20)
	t.Logf("ring of %d samples of 30 chutes: %.2f MiB", r.len(), held)
	if held > 1 {
		t.Errorf("the ring holds %.2f MiB, want at most 1", held)
	}
	runtime.KeepAlive(r)
}

// The ring gives back what it was given, oldest first, as chutes and
// interfaces come and go, counts of any size included.
func TestRingRoundTrip(t *testing.T) {
	r := newRing(4)
	var want []reading
	for i, chutes := range []int{0, 2, 2, 3, 1, 1} {
		rd := fullReading(int64(i), chutes)
		if i == 4 {
			rd.chutes["web000"] = chuteCount{cpuNs: ^uint64(0), mem: 1 << 63, memLimit: ^uint64(0) - 1, disk: 12345}
		}
		r.add(rd)
		want = append(want, rd)
	}
	want = want[len(want)-4:]
	if r.len() != 4 {
		t.Fatalf("len %d, want 4", r.len())
	}
	for i := range r.len() {
		got := r.at(i).reading()
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("reading %d:\n got %+v\nwant %+v", i, got, want[i])
		}
		if s, w := r.at(i).sample(), want[i].sample(); !reflect.DeepEqual(s, w) {
			t.Errorf("sample %d:\n got %+v\nwant %+v", i, s, w)
		}
	}
}

// A reading's rates are its counts over its interval: CPU in % of one
// core and of the gateway, bytes a second; a chute with no count has
// zero rates, not NaN, whatever the gateway's CPUs.
func TestReadingRates(t *testing.T) {
	rd := reading{gw: Sample{T: 5, MemUsed: 7}, secs: 2, ncpu: 2,
		ifaces: map[string]byteCount{"eth0": {rx: 3000, tx: 1}},
		chutes: map[string]chuteCount{
			"busy": {cpuNs: 5e8, rx: 4000, tx: 1000, mem: 9, memLimit: 10, pids: 3, disk: 11, oomKills: 1},
			"idle": {mem: 1},
		}}
	got := rd.sample()
	want := Sample{T: 5, MemUsed: 7,
		Ifaces: map[string]Rate{"eth0": {RxBps: 1500, TxBps: 0.5}},
		Chutes: map[string]ChuteSample{
			"busy": {CPU: 25, CPUGateway: 12.5, RxBps: 2000, TxBps: 500, Mem: 9, MemLimit: 10, Pids: 3, Disk: 11, OOMKills: 1},
			"idle": {Mem: 1},
		}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	rd.ncpu = 0
	if c := rd.sample().Chutes["idle"]; c.CPUGateway != 0 {
		t.Errorf("idle chute on a gateway of no CPUs: %+v", c)
	}
}
