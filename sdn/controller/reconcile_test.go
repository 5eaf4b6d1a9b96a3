package controller

import (
	"runtime"
	"slices"
	"testing"

	"paradrop/sdn/ofp"
)

// A desired set holds each flow's encoding once, and not the Flows it was
// given: 1140 flows (30 chutes' worth) took 712 KB with its key and
// content copied beside it, 560 KB without; and 1.37 MB once the caller
// dropped the Flows, which the set kept (their matches' and instructions'
// slices), against 0.50 MB now. Made after the first reading, the Flows
// count unless the set lets them go.
func TestDesiredSetMemory(t *testing.T) {
	for _, made := range []string{"before", "after"} {
		t.Run("flows made "+made, func(t *testing.T) {
			var flows []Flow
			if made == "before" {
				flows = benchFlows(1140, 1<<32)
			}
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&m0)
			if made == "after" {
				flows = benchFlows(1140, 1<<32)
			}
			d, err := newDesiredSet(flows, nil)
			if err != nil {
				t.Fatal(err)
			}
			if made == "after" {
				flows = nil
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
		})
	}
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

// SetDesired replaces the set (and kicks a reconcile) only when the
// switch would be asked something else, or a note changed; the network
// layer tells a change by it instead of keeping the flows to compare.
func TestSetDesiredChanged(t *testing.T) {
	c := New(Config{Logf: t.Logf})
	base := benchFlows(3, 1<<32)
	meters := []Meter{{ID: 1, RateKbps: 1000}}
	if !c.SetDesired(base, meters) {
		t.Fatal("the first set was not a change")
	}
	for _, tc := range []struct {
		name    string
		edit    func(fs []Flow, ms []Meter) ([]Flow, []Meter)
		changed bool
	}{
		{"same flows, new slices", func(fs []Flow, ms []Meter) ([]Flow, []Meter) { return fs, ms }, false},
		{"an output port", func(fs []Flow, ms []Meter) ([]Flow, []Meter) {
			fs[1].Instructions = []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: 3})}
			return fs, ms
		}, true},
		{"a cookie", func(fs []Flow, ms []Meter) ([]Flow, []Meter) { fs[2].Cookie++; return fs, ms }, true},
		{"a note", func(fs []Flow, ms []Meter) ([]Flow, []Meter) { fs[0].Note = "other"; return fs, ms }, true},
		{"a flow fewer", func(fs []Flow, ms []Meter) ([]Flow, []Meter) { return fs[:2], ms }, true},
		{"a meter's rate", func(fs []Flow, ms []Meter) ([]Flow, []Meter) { ms[0].RateKbps = 2000; return fs, ms }, true},
		{"no meter", func(fs []Flow, ms []Meter) ([]Flow, []Meter) { return fs, nil }, true},
		{"the flows in another order", func(fs []Flow, ms []Meter) ([]Flow, []Meter) {
			slices.Reverse(fs)
			return fs, ms
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !c.SetDesired(base, meters) && c.desiredSet().gen == 0 {
				t.Fatal("no set")
			}
			gen := c.desiredSet().gen
			fs, ms := tc.edit(benchFlows(3, 1<<32), slices.Clone(meters))
			if got := c.SetDesired(fs, ms); got != tc.changed {
				t.Errorf("SetDesired = %v, want %v", got, tc.changed)
			}
			if moved := c.desiredSet().gen != gen; moved != tc.changed {
				t.Errorf("generation moved: %v, want %v", moved, tc.changed)
			}
		})
	}
}
