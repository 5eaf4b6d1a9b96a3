package ofsim

import (
	"fmt"
	"reflect"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// Ambiguity is two flows of one table and one priority that some packet
// matches both, with different instructions: OpenFlow leaves the choice
// between them to the switch, and Open vSwitch's depends on the order
// they were installed in, so the packet's fate changes with a restart.
type Ambiguity struct {
	Table    uint8
	Priority uint16
	A, B     *controller.Flow
}

func (a Ambiguity) String() string {
	return fmt.Sprintf("table %d, priority %d: %q and %q overlap with different instructions", a.Table, a.Priority, a.A.Note, a.B.Note)
}

// Ambiguities lists every pair of flows that some packet matches both at
// one table and priority with different instructions, found from the
// matches alone (no packet need be run): the simulator's run-time refusal
// of such a pair (see lookup) only fires for the packets a test sends.
func Ambiguities(flows []controller.Flow) []Ambiguity {
	var out []Ambiguity
	for i := range flows {
		a := &flows[i]
		for j := i + 1; j < len(flows); j++ {
			b := &flows[j]
			if a.Table != b.Table || a.Priority != b.Priority || !overlap(a.Match, b.Match) ||
				reflect.DeepEqual(a.Instructions, b.Instructions) {
				continue
			}
			out = append(out, Ambiguity{Table: a.Table, Priority: a.Priority, A: a, B: b})
		}
	}
	return out
}

// overlap says whether some packet matches both a and b: every field
// both constrain agrees on the bits both masks cover. Fields one leaves
// out are free, since prerequisites are explicit (see check). The
// connection states a packet can be in at once are honoured: none is
// both new and established, say.
func overlap(a, b ofp.Match) bool {
	var ctOnes uint32
	for _, x := range a.Fields {
		for _, y := range b.Fields {
			if x.ID != y.ID {
				continue
			}
			if len(x.Value) != len(y.Value) {
				return false
			}
			for i := range x.Value {
				m := maskByte(x.Mask, i) & maskByte(y.Mask, i)
				if x.Value[i]&m != y.Value[i]&m {
					return false
				}
			}
		}
	}
	for _, m := range []ofp.Match{a, b} {
		for _, o := range m.Fields {
			if o.ID == ofp.FieldCtState {
				v, c := uint32(bytesUint(o.Value)), ^uint32(0)
				if o.Mask != nil {
					c = uint32(bytesUint(o.Mask))
				}
				ctOnes |= v & c
			}
		}
	}
	return ctPossible(ctOnes)
}

// ctPossible says whether a tracked packet can have all the states in
// ones set: new, established, related and invalid exclude one another,
// and each needs trk.
func ctPossible(ones uint32) bool {
	n := 0
	for _, s := range []uint32{ofp.CtStateNew, ofp.CtStateEst, ofp.CtStateRel, ofp.CtStateInv} {
		if ones&s != 0 {
			n++
		}
	}
	return n <= 1
}

func maskByte(mask []byte, i int) byte {
	if mask == nil {
		return 0xff
	}
	return mask[i]
}

func bytesUint(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
