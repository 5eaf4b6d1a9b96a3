package usage

import (
	"encoding/binary"
	"maps"
	"slices"
)

// ring keeps the last Recent of readings, the oldest overwritten first. A
// Sample's two maps cost several times the values they hold (a 30-chute
// gateway's 900 samples took 10.7 MiB as maps, 3 MiB as slices of its
// float64 and uint64 fields), so a slot keeps a reading's counts instead,
// the integers its rates are computed from, as varints in the order of
// lists of names that slots share while the chutes and interfaces stay
// the same: 0.8 MiB for the same samples (TestRingMemory), and the rates
// computed again from them are the very ones the sampler gave.
type ring struct {
	slots []slot
	next  int // where the next reading goes
}

// slot is a reading as the ring keeps it.
type slot struct {
	gw         Sample // its maps nil
	secs       float64
	ncpu       int
	ifNames    []string // shared with the previous slot while unchanged
	chuteNames []string // likewise
	counts     []byte   // uvarints: per interface rx, tx; per chute its chuteCount's fields (appendSize for sizes)
}

func newRing(n int) ring { return ring{slots: make([]slot, 0, n)} }

func (r *ring) len() int { return len(r.slots) }

// at is the i-th oldest slot.
func (r *ring) at(i int) *slot {
	c := cap(r.slots)
	return &r.slots[(r.next-len(r.slots)+i+c)%c]
}

// add keeps rd, in place of the oldest once full.
func (r *ring) add(rd reading) {
	sl := slot{gw: rd.gw, secs: rd.secs, ncpu: rd.ncpu}
	sl.gw.Ifaces, sl.gw.Chutes = nil, nil
	var last slot
	if n := len(r.slots); n > 0 {
		last = *r.at(n - 1)
	}
	sl.ifNames = names(rd.ifaces, last.ifNames)
	sl.chuteNames = names(rd.chutes, last.chuteNames)
	var b []byte
	for _, n := range sl.ifNames {
		c := rd.ifaces[n]
		b = binary.AppendUvarint(binary.AppendUvarint(b, c.rx), c.tx)
	}
	for _, n := range sl.chuteNames {
		c := rd.chutes[n]
		counts, sizes := c.fields()
		for _, v := range counts {
			b = binary.AppendUvarint(b, *v)
		}
		for _, v := range sizes {
			b = appendSize(b, *v)
		}
	}
	sl.counts = slices.Clip(b)
	if len(r.slots) < cap(r.slots) {
		r.slots = append(r.slots, sl)
	} else {
		r.slots[r.next] = sl
	}
	r.next = (r.next + 1) % cap(r.slots)
}

// reading is the slot as the reading it was given.
func (sl *slot) reading() reading {
	rd := reading{gw: sl.gw, secs: sl.secs, ncpu: sl.ncpu,
		ifaces: make(map[string]byteCount, len(sl.ifNames)), chutes: make(map[string]chuteCount, len(sl.chuteNames))}
	b := sl.counts
	next := func() uint64 {
		v, n := binary.Uvarint(b)
		b = b[n:]
		return v
	}
	for _, n := range sl.ifNames {
		var c byteCount
		c.rx = next()
		c.tx = next()
		rd.ifaces[n] = c
	}
	for _, n := range sl.chuteNames {
		var c chuteCount
		counts, sizes := c.fields()
		for _, v := range counts {
			*v = next()
		}
		for _, v := range sizes {
			x := next()
			if *v = x >> 1 << pageShift; x&1 != 0 {
				*v |= next()
			}
		}
		rd.chutes[n] = c
	}
	return rd
}

// sample is the slot as the Sample the sampler made of its reading.
func (sl *slot) sample() Sample {
	rd := sl.reading()
	return rd.sample()
}

// pageShift is log2 of the page size memory is counted in: a size is
// kept as whole pages, then the rest if any.
const pageShift = 12

// appendSize appends v, a size in bytes: its whole pages and a flag, then
// the bytes beyond if the flag is set.
func appendSize(b []byte, v uint64) []byte {
	rest := v & (1<<pageShift - 1)
	flag := uint64(0)
	if rest != 0 {
		flag = 1
	}
	b = binary.AppendUvarint(b, v>>pageShift<<1|flag)
	if rest != 0 {
		b = binary.AppendUvarint(b, rest)
	}
	return b
}

// names is m's keys: prev if they are the same, else sorted.
func names[V any](m map[string]V, prev []string) []string {
	if sameKeys(m, prev) {
		return prev
	}
	return slices.Sorted(maps.Keys(m))
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
