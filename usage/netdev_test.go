package usage

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// netDev is /proc/net/dev as a gateway with n chutes has it: two veths a
// chute beside the host's own interfaces.
func netDev(n int) []byte {
	var b strings.Builder
	b.WriteString("Inter-|   Receive                                                |  Transmit\n")
	b.WriteString(" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n")
	line := func(name string, i int) {
		fmt.Fprintf(&b, "%16s: %7d %7d    0    0    0     0          0         0 %8d %7d    0    0    0     0       0          0\n", name, 1000*i, i, 2000*i, 2*i)
	}
	line("lo", 1)
	line("eth0", 2)
	line("pdbr0", 3)
	for i := range n {
		line(fmt.Sprintf("vc%05dh", i), i)
		line(fmt.Sprintf("vc%05dp", i), i)
	}
	return []byte(b.String())
}

func TestParseNetDev(t *testing.T) {
	got, err := parseNetDev(netDev(2))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]byteCount{"lo": {1000, 2000}, "eth0": {2000, 4000}, "pdbr0": {3000, 6000},
		"vc00000h": {0, 0}, "vc00000p": {0, 0}, "vc00001h": {1000, 2000}, "vc00001p": {1000, 2000}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseNetDev([]byte("x: 1 2 3 4 5 6 7 8 y\n")); err == nil {
		t.Error("a bad counter was accepted")
	}
}

// TestParseNetDevHeap: what a parsed reading holds is its map, not the
// file it was read from. The sampler keeps the last reading and the ring
// the names of each reading whose interfaces changed (each install), so a
// name that pinned the file kept 130 bytes an interface per reading.
func TestParseNetDevHeap(t *testing.T) {
	const chutes, readings = 30, 100
	content := netDev(chutes)
	kept := make([]map[string]byteCount, 0, readings)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for range readings {
		m, err := parseNetDev(content)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, m)
	}
	per := (heap() - before) / readings
	runtime.KeepAlive(kept)
	// The map of 63 interfaces alone is about 4.5 KB; the file 8.6 KB.
	if limit := uint64(len(content)) * 3 / 4; per > limit {
		t.Errorf("a reading of %d interfaces holds %d bytes, want <= %d (the file is %d)", 3+2*chutes, per, limit, len(content))
	}
	t.Logf("a reading of %d interfaces holds %d bytes (the file is %d)", 3+2*chutes, per, len(content))
}
