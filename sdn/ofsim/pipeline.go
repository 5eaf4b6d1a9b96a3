package ofsim

import (
	"errors"
	"fmt"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// matches says whether f's match holds for p.
func matches(f *controller.Flow, p *Packet, m meta) bool {
	for _, o := range f.Match.Fields {
		v, ok := p.field(o.ID, m)
		if !ok || len(v) != len(o.Value) {
			return false
		}
		for i := range v {
			mask := byte(0xff)
			if o.Mask != nil {
				mask = o.Mask[i]
			}
			if v[i]&mask != o.Value[i] {
				return false
			}
		}
	}
	return true
}

// lookup finds the flow of table t that p hits: the highest priority
// match. Two matching flows of one priority are an error: OpenFlow leaves
// the choice to the switch.
func (s *Switch) lookup(t uint8, p *Packet, m meta) (*controller.Flow, error) {
	var hit *controller.Flow
	for _, f := range s.tables[t] {
		if hit != nil && f.Priority < hit.Priority {
			break
		}
		if !matches(f, p, m) {
			continue
		}
		if hit != nil {
			return nil, fmt.Errorf("table %d: flows %q and %q (priority %d) both match %s", t, hit.Note, f.Note, f.Priority, p)
		}
		hit = f
	}
	return hit, nil
}

// Output is a packet sent out of a port.
type Output struct {
	Port   uint32
	Packet *Packet
}

// Step is one table lookup: the flow hit, nil for a table miss (drop).
type Step struct {
	Table   uint8
	Flow    *controller.Flow
	CtState uint32 // the ct_state the lookup saw
}

// Trace is what became of a packet.
type Trace struct {
	Steps   []Step
	Outputs []Output
}

// Decided is the flow that decided the packet's fate: the last one it hit
// (nil if its last lookup missed).
func (t *Trace) Decided() *controller.Flow {
	if len(t.Steps) == 0 {
		return nil
	}
	return t.Steps[len(t.Steps)-1].Flow
}

// Note is Decided's note, or "table miss".
func (t *Trace) Note() string {
	if f := t.Decided(); f != nil {
		return f.Note
	}
	return "table miss"
}

// OutputTo returns the packets sent out of port.
func (t *Trace) OutputTo(port uint32) []*Packet {
	var ps []*Packet
	for _, o := range t.Outputs {
		if o.Port == port {
			ps = append(ps, o.Packet)
		}
	}
	return ps
}

// pass is one trip through the tables, from table, of a packet whose
// headers as matched are match and as they will leave are wire (they
// differ after a ct nat without recirculation, which rewrites the packet
// but not what the pipeline matches on).
type pass struct {
	table       uint8
	match, wire *Packet
	meta        meta
}

// maxPasses bounds recirculation.
const maxPasses = 8

// Run sends p into the switch on p.InPort and returns what became of it.
// The connection tracker keeps what p committed.
func (s *Switch) Run(p Packet) (*Trace, error) {
	tr := &Trace{}
	in := p.clone()
	queue := []pass{{table: 0, match: in, wire: in.clone()}}
	for n := 0; len(queue) > 0; n++ {
		if n == maxPasses {
			return tr, errors.New("too many recirculations")
		}
		ps := queue[0]
		queue = queue[1:]
		more, err := s.run(tr, ps)
		if err != nil {
			return tr, err
		}
		queue = append(queue, more...)
	}
	return tr, nil
}

func (s *Switch) run(tr *Trace, ps pass) ([]pass, error) {
	var recirc []pass
	actionSet := map[string]ofp.Action{}
	for table := ps.table; ; {
		f, err := s.lookup(table, ps.match, ps.meta)
		if err != nil {
			return nil, err
		}
		tr.Steps = append(tr.Steps, Step{Table: table, Flow: f, CtState: ps.meta.ctState})
		if f == nil {
			return recirc, nil
		}
		next := -1
		for _, typ := range []uint16{ofp.InstructionTypeMeter, ofp.InstructionTypeApplyActions, ofp.InstructionTypeClearActions,
			ofp.InstructionTypeWriteActions, ofp.InstructionTypeGotoTable} {
			for _, in := range f.Instructions {
				switch in := in.(type) {
				case *ofp.InstructionMeter:
					if typ == ofp.InstructionTypeMeter {
						m := s.meters[in.MeterID]
						m.Packets++
						m.Bytes += uint64(max(ps.wire.Len, 64))
					}
				case *ofp.InstructionGotoTable:
					if typ == ofp.InstructionTypeGotoTable {
						next = int(in.TableID)
					}
				case *ofp.InstructionActions:
					if in.Type != typ {
						continue
					}
					switch typ {
					case ofp.InstructionTypeApplyActions:
						r, err := s.apply(tr, &ps, table, in.Actions)
						if err != nil {
							return nil, fmt.Errorf("flow %q: %w", f.Note, err)
						}
						recirc = append(recirc, r...)
					case ofp.InstructionTypeClearActions:
						clear(actionSet)
					case ofp.InstructionTypeWriteActions:
						for _, a := range in.Actions {
							actionSet[actionKey(a)] = a
						}
					}
				}
			}
		}
		if next < 0 {
			// End of the pipeline: the action set, set-fields before
			// the output.
			var set, out []ofp.Action
			for _, a := range actionSet {
				if _, ok := a.(*ofp.ActionOutput); ok {
					out = append(out, a)
				} else {
					set = append(set, a)
				}
			}
			r, err := s.apply(tr, &ps, table, append(set, out...))
			if err != nil {
				return nil, fmt.Errorf("flow %q: action set: %w", f.Note, err)
			}
			return append(recirc, r...), nil
		}
		table = uint8(next)
	}
}

func actionKey(a ofp.Action) string {
	if sf, ok := a.(*ofp.ActionSetField); ok {
		return fmt.Sprint("set_field ", sf.Field.ID)
	}
	return fmt.Sprintf("%T", a)
}

// apply runs an action list on the pass's packet and returns the passes
// that ct actions recirculate.
func (s *Switch) apply(tr *Trace, ps *pass, table uint8, as []ofp.Action) ([]pass, error) {
	var recirc []pass
	for _, a := range as {
		switch a := a.(type) {
		case *ofp.ActionOutput:
			port := a.Port
			if port == ofp.PortInPort {
				port = ps.match.InPort
			} else if port == ps.match.InPort {
				continue // OpenFlow never sends a packet back where it came from unless told IN_PORT
			}
			tr.Outputs = append(tr.Outputs, Output{Port: port, Packet: ps.wire.clone()})
		case *ofp.ActionSetField:
			if err := ps.match.setField(a.Field); err != nil {
				return nil, err
			}
			if err := ps.wire.setField(a.Field); err != nil {
				return nil, err
			}
		case *ofp.NXActionCT:
			after := ps.wire.clone()
			state := s.ct.track(a, after)
			if a.RecircTable == ofp.NXCTRecircNone {
				// The datapath's packet is rewritten; the pipeline
				// goes on matching the headers it had.
				ps.wire = after
				continue
			}
			recirc = append(recirc, pass{table: a.RecircTable, match: after, wire: after.clone(),
				meta: meta{ctState: state, ctZone: a.ZoneOfsNbits}})
		default:
			return nil, fmt.Errorf("action %T: %w", a, ErrUnsupported)
		}
	}
	return recirc, nil
}
