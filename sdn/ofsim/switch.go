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

// prereq is what a match must pin down before it may match a field.
type prereq struct {
	ethTypes []uint16
	protos   []uint8
	icmp6    []uint8 // ICMPv6 types
}

var (
	ip46    = []uint16{EthIPv4, EthIPv6}
	prereqs = map[ofp.FieldID]prereq{
		ofp.FieldInPort: {}, ofp.FieldEthDst: {}, ofp.FieldEthSrc: {}, ofp.FieldEthType: {},
		ofp.FieldCtState: {}, ofp.FieldCtZone: {},
		ofp.FieldIPProto:      {ethTypes: ip46},
		ofp.FieldIPv4Src:      {ethTypes: []uint16{EthIPv4}},
		ofp.FieldIPv4Dst:      {ethTypes: []uint16{EthIPv4}},
		ofp.FieldIPv6Src:      {ethTypes: []uint16{EthIPv6}},
		ofp.FieldIPv6Dst:      {ethTypes: []uint16{EthIPv6}},
		ofp.FieldTCPSrc:       {ethTypes: ip46, protos: []uint8{ProtoTCP}},
		ofp.FieldTCPDst:       {ethTypes: ip46, protos: []uint8{ProtoTCP}},
		ofp.FieldUDPSrc:       {ethTypes: ip46, protos: []uint8{ProtoUDP}},
		ofp.FieldUDPDst:       {ethTypes: ip46, protos: []uint8{ProtoUDP}},
		ofp.FieldICMPv4Type:   {ethTypes: []uint16{EthIPv4}, protos: []uint8{ProtoICMP}},
		ofp.FieldICMPv4Code:   {ethTypes: []uint16{EthIPv4}, protos: []uint8{ProtoICMP}},
		ofp.FieldICMPv6Type:   {ethTypes: []uint16{EthIPv6}, protos: []uint8{ProtoICMPv6}},
		ofp.FieldICMPv6Code:   {ethTypes: []uint16{EthIPv6}, protos: []uint8{ProtoICMPv6}},
		ofp.FieldIPv6NDTarget: {ethTypes: []uint16{EthIPv6}, protos: []uint8{ProtoICMPv6}, icmp6: []uint8{135, 136}},
		ofp.FieldARPOp:        {ethTypes: []uint16{EthARP}},
		ofp.FieldARPSPA:       {ethTypes: []uint16{EthARP}},
		ofp.FieldARPTPA:       {ethTypes: []uint16{EthARP}},
		ofp.FieldARPSHA:       {ethTypes: []uint16{EthARP}},
		ofp.FieldARPTHA:       {ethTypes: []uint16{EthARP}},
	}
)

// exact returns the exact value the match gives field id, if any.
func exact(m ofp.Match, id ofp.FieldID) (uint64, bool) {
	for _, o := range m.Fields {
		if o.ID == id && o.Mask == nil {
			var v uint64
			for _, b := range o.Value {
				v = v<<8 | uint64(b)
			}
			return v, true
		}
	}
	return 0, false
}

func (s *Switch) check(f *controller.Flow) error {
	seen := map[ofp.FieldID]bool{}
	for _, o := range f.Match.Fields {
		pr, ok := prereqs[o.ID]
		if !ok {
			return fmt.Errorf("match on field %v: %w", o.ID, ErrUnsupported)
		}
		if seen[o.ID] {
			return fmt.Errorf("field %v twice", o.ID)
		}
		seen[o.ID] = true
		if o.Mask != nil {
			if len(o.Mask) != len(o.Value) {
				return fmt.Errorf("field %v: mask and value of different lengths", o.ID)
			}
			for i := range o.Value {
				if o.Value[i]&^o.Mask[i] != 0 {
					return fmt.Errorf("field %v: value bits outside the mask", o.ID)
				}
			}
		}
		if err := pr.holds(f.Match); err != nil {
			return fmt.Errorf("field %v: %w", o.ID, err)
		}
	}
	var ops []uint16
	for _, in := range f.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionMeter:
			if s.meters[in.MeterID] == nil {
				return fmt.Errorf("meter %d does not exist", in.MeterID)
			}
			ops = append(ops, ofp.InstructionTypeMeter)
		case *ofp.InstructionGotoTable:
			if in.TableID <= f.Table {
				return fmt.Errorf("goto table %d from table %d", in.TableID, f.Table)
			}
			ops = append(ops, ofp.InstructionTypeGotoTable)
		case *ofp.InstructionActions:
			for _, a := range in.Actions {
				if err := checkAction(f.Table, a); err != nil {
					return err
				}
				if _, ok := a.(*ofp.NXActionCT); ok {
					if et, ok := exact(f.Match, ofp.FieldEthType); !ok || (et != EthIPv4 && et != EthIPv6) {
						return errors.New("ct needs a match on eth_type IPv4 or IPv6")
					}
				}
			}
			ops = append(ops, in.Type)
		default:
			return fmt.Errorf("instruction %T: %w", in, ErrUnsupported)
		}
	}
	for i, op := range ops {
		if slices.Contains(ops[i+1:], op) {
			return fmt.Errorf("instruction type %d twice", op)
		}
	}
	return nil
}

func (pr prereq) holds(m ofp.Match) error {
	if pr.ethTypes != nil {
		et, ok := exact(m, ofp.FieldEthType)
		if !ok || !slices.Contains(pr.ethTypes, uint16(et)) {
			return fmt.Errorf("needs eth_type one of %#x", pr.ethTypes)
		}
	}
	if pr.protos != nil {
		p, ok := exact(m, ofp.FieldIPProto)
		if !ok || !slices.Contains(pr.protos, uint8(p)) {
			return fmt.Errorf("needs ip_proto one of %d", pr.protos)
		}
	}
	if pr.icmp6 != nil {
		t, ok := exact(m, ofp.FieldICMPv6Type)
		if !ok || !slices.Contains(pr.icmp6, uint8(t)) {
			return fmt.Errorf("needs icmpv6_type one of %d", pr.icmp6)
		}
	}
	return nil
}

func checkAction(table uint8, a ofp.Action) error {
	switch a := a.(type) {
	case *ofp.ActionOutput:
		switch {
		case a.Port < ofp.PortInPort, a.Port == ofp.PortInPort, a.Port == ofp.PortLocal:
		default:
			return fmt.Errorf("output to reserved port %#x: %w", a.Port, ErrUnsupported)
		}
	case *ofp.ActionSetField:
		switch a.Field.ID {
		case ofp.FieldEthDst, ofp.FieldEthSrc, ofp.FieldIPv4Src, ofp.FieldIPv4Dst, ofp.FieldIPv6Src, ofp.FieldIPv6Dst,
			ofp.FieldTCPSrc, ofp.FieldTCPDst, ofp.FieldUDPSrc, ofp.FieldUDPDst:
		default:
			return fmt.Errorf("set_field %v: %w", a.Field.ID, ErrUnsupported)
		}
	case *ofp.NXActionCT:
		if a.ZoneSrc != 0 || a.Alg != 0 {
			return fmt.Errorf("ct with a zone from a field or an ALG: %w", ErrUnsupported)
		}
		if a.RecircTable != ofp.NXCTRecircNone && a.RecircTable <= table {
			return fmt.Errorf("ct recirculates to table %d from table %d", a.RecircTable, table)
		}
		for _, n := range a.Actions {
			nat, ok := n.(*ofp.NXActionNAT)
			if !ok {
				return fmt.Errorf("%T inside ct: %w", n, ErrUnsupported)
			}
			if nat.Flags&(ofp.NXNATFlagSrc|ofp.NXNATFlagDst) == ofp.NXNATFlagSrc|ofp.NXNATFlagDst {
				return errors.New("nat both src and dst")
			}
			if nat.IPMax.IsValid() || nat.ProtoMax != 0 {
				return fmt.Errorf("nat ranges: %w", ErrUnsupported)
			}
			if nat.IPMin.IsValid() && a.Flags&ofp.NXCTFlagCommit == 0 {
				return errors.New("nat with an address needs commit")
			}
		}
	default:
		return fmt.Errorf("action %T: %w", a, ErrUnsupported)
	}
	return nil
}

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
