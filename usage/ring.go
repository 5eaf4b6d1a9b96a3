package usage

import (
	"maps"
	"slices"
)

// ring keeps the last Recent of samples, the oldest overwritten first. A
// Sample's two maps cost several times the values they hold (a 30-chute
// gateway's 900 samples took 10.7 MiB as maps), so a slot holds the values
// in slices, in the order of a list of names that slots share while the
// chutes and interfaces stay the same: 3 MiB for the same samples.
type ring struct {
	slots []slot
	next  int // where the next sample goes
}

// slot is a Sample as the ring keeps it.
type slot struct {
	smp        Sample   // its maps nil
	ifNames    []string // shared with the previous slot while unchanged
	ifRates    []Rate   // in ifNames' order
	chuteNames []string // likewise
	chutes     []ChuteSample
}

func newRing(n int) ring { return ring{slots: make([]slot, 0, n)} }

func (r *ring) len() int { return len(r.slots) }

// at is the i-th oldest slot.
func (r *ring) at(i int) *slot {
	c := cap(r.slots)
	return &r.slots[(r.next-len(r.slots)+i+c)%c]
}

// add keeps smp, in place of the oldest once full.
func (r *ring) add(smp Sample) {
	sl := slot{smp: smp}
	sl.smp.Ifaces, sl.smp.Chutes = nil, nil
	var last slot
	if n := len(r.slots); n > 0 {
		last = *r.at(n - 1)
	}
	sl.ifNames, sl.ifRates = pack(smp.Ifaces, last.ifNames)
	sl.chuteNames, sl.chutes = pack(smp.Chutes, last.chuteNames)
	if len(r.slots) < cap(r.slots) {
		r.slots = append(r.slots, sl)
	} else {
		r.slots[r.next] = sl
	}
	r.next = (r.next + 1) % cap(r.slots)
}

// sample is the slot as the Sample it was given.
func (sl *slot) sample() Sample {
	smp := sl.smp
	smp.Ifaces = unpack(sl.ifNames, sl.ifRates)
	smp.Chutes = unpack(sl.chuteNames, sl.chutes)
	return smp
}

// pack lays m's values out in the order of names, reused if they are
// m's keys, else of m's keys sorted.
func pack[V any](m map[string]V, names []string) ([]string, []V) {
	if !sameKeys(m, names) {
		names = slices.Sorted(maps.Keys(m))
	}
	vals := make([]V, len(names))
	for i, n := range names {
		vals[i] = m[n]
	}
	return names, vals
}

func sameKeys[V any](m map[string]V, names []string) bool {
	if len(m) != len(names) {
		return false
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return false
		}
	}
	return true
}

func unpack[V any](names []string, vals []V) map[string]V {
	m := make(map[string]V, len(names))
	for i, n := range names {
		m[n] = vals[i]
	}
	return m
}
