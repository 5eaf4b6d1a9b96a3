package ofsim

import (
	"errors"
	"fmt"
	"slices"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

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
		ofp.FieldIPv6NDSLL:    {ethTypes: []uint16{EthIPv6}, protos: []uint8{ProtoICMPv6}, icmp6: []uint8{135}},
		ofp.FieldIPv6NDTLL:    {ethTypes: []uint16{EthIPv6}, protos: []uint8{ProtoICMPv6}, icmp6: []uint8{136}},
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
		case a.Port < ofp.PortInPort, a.Port == ofp.PortInPort, a.Port == ofp.PortLocal, a.Port == ofp.PortController:
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
