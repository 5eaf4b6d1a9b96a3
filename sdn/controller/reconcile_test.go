package controller

import (
	"runtime"
	"slices"
	"testing"

	"paradrop/sdn/ofp"
)

// A desired set holds each flow's encoding once: 1140 flows (30 chutes'
// worth) took 712 KB with its key and content copied beside it, 560 KB
// without.
func TestDesiredSetMemory(t *testing.T) {
	flows := benchFlows(1140, 1<<32)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m0)
	d, err := newDesiredSet(flows, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	held := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("a desired set of %d flows holds %d bytes", len(d.order), held)
	if held > 620<<10 {
		t.Errorf("a desired set of %d flows holds %d bytes, want at most 620 KiB", len(d.order), held)
	}
	runtime.KeepAlive(d)
	runtime.KeepAlive(flows)
}

// A switch's flow with its match in OVS's order matches the desired flow it came
// from; one whose cookie, timeouts or instructions differ is the same
// entry with other content.
func TestEncodedKeyAndContent(t *testing.T) {
	f := benchFlows(1, 1<<32)[0]
	want, err := canonical(f.Table, f.Priority, f.Cookie, 0, 0, f.Match, f.Instructions)
	if err != nil {
		t.Fatal(err)
	}
	ovs := f.Match // in OVS's order
	ovs.Fields = slices.Clone(f.Match.Fields)
	slices.Reverse(ovs.Fields)
	for _, c := range []struct {
		name     string
		cookie   uint64
		idle     uint16
		is       []ofp.Instruction
		same     bool
		priority uint16
	}{
		{"as sent", f.Cookie, 0, f.Instructions, true, f.Priority},
		{"other cookie", f.Cookie + 1, 0, f.Instructions, false, f.Priority},
		{"idle timeout", f.Cookie, 30, f.Instructions, false, f.Priority},
		{"no instructions", f.Cookie, 0, nil, false, f.Priority},
	} {
		have, err := canonical(f.Table, c.priority, c.cookie, c.idle, 0, ovs, c.is)
		if err != nil {
			t.Fatal(err)
		}
		if have.key() != want.key() {
			t.Errorf("%s: key differs", c.name)
		}
		if have.sameContent(want) != c.same || want.sameContent(have) != c.same {
			t.Errorf("%s: same content %v, want %v", c.name, have.sameContent(want), c.same)
		}
	}
	other, err := canonical(f.Table, f.Priority+1, f.Cookie, 0, 0, f.Match, f.Instructions)
	if err != nil {
		t.Fatal(err)
	}
	if other.key() == want.key() {
		t.Error("another priority, same key")
	}
}
