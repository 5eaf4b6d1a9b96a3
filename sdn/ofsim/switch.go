// Package ofsim is a model of the OpenFlow 1.3 switch our controller
// programs, in pure Go: flow tables (match fields with masks and
// prerequisites, priorities, goto-table, apply and write actions, output),
// Open vSwitch's connection tracker (ct with commit, zone, nat and
// recirculation, as a small state machine per connection) and meters,
// counted. A packet run through it says which flow decided its fate and
// what left which port, so that the flows derived from a policy are
// checked without a switch or root. Faucet's fake OpenFlow table
// (tests/unit/faucet/fakeoftable.py) is the model.
//
// The simulator refuses, rather than guesses, what it does not model: an
// unknown match field or action, a match without its prerequisites (which
// Open vSwitch rejects too), a goto backwards, two flows of one priority
// both matching a packet.
package ofsim

import (
	"errors"
	"fmt"
	"slices"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// Switch is a loaded set of flows and meters, with its connection
// tracker's state. It is not safe for concurrent use.
type Switch struct {
	tables map[uint8][]*controller.Flow // by priority, highest first
	meters map[uint32]*MeterCount
	ct     tracker
}

// MeterCount is what passed a meter.
type MeterCount struct {
	Packets, Bytes uint64
}

// ErrUnsupported is returned (wrapped) for what the simulator does not
// model.
var ErrUnsupported = errors.New("not modelled by the simulator")

// New loads flows and meters as the controller sends them. It refuses
// flows the switch would refuse (missing prerequisites, a bad mask, a
// meter that does not exist, a goto backwards) and two flows that are one
// entry.
func New(flows []controller.Flow, meters []controller.Meter) (*Switch, error) {
	s := &Switch{tables: map[uint8][]*controller.Flow{}, meters: map[uint32]*MeterCount{}}
	for _, m := range meters {
		s.meters[m.ID] = &MeterCount{}
	}
	for i := range flows {
		f := &flows[i]
		if err := s.check(f); err != nil {
			return nil, fmt.Errorf("flow %q (table %d, priority %d): %w", f.Note, f.Table, f.Priority, err)
		}
		for _, g := range s.tables[f.Table] {
			if g.Priority == f.Priority && sameMatch(g.Match, f.Match) {
				return nil, fmt.Errorf("flows %q and %q are the same entry", g.Note, f.Note)
			}
		}
		s.tables[f.Table] = append(s.tables[f.Table], f)
	}
	for _, t := range s.tables {
		slices.SortStableFunc(t, func(a, b *controller.Flow) int { return int(b.Priority) - int(a.Priority) })
	}
	return s, nil
}

func sameMatch(a, b ofp.Match) bool {
	key := func(m ofp.Match) map[ofp.FieldID]string {
		k := map[ofp.FieldID]string{}
		for _, o := range m.Fields {
			k[o.ID] = string(o.Value) + "/" + string(o.Mask)
		}
		return k
	}
	ka, kb := key(a), key(b)
	if len(ka) != len(kb) {
		return false
	}
	for id, v := range ka {
		if kb[id] != v {
			return false
		}
	}
	return true
}

// Reset forgets every connection and meter count, as a switch just
// programmed with the same flows.
func (s *Switch) Reset() {
	s.ct = tracker{}
	for _, m := range s.meters {
		*m = MeterCount{}
	}
}

// Meter returns what meter id counted.
func (s *Switch) Meter(id uint32) MeterCount {
	if m := s.meters[id]; m != nil {
		return *m
	}
	return MeterCount{}
}
