package ofp

import (
	"net/netip"
)

// Nicira (OVS) extension actions: the experimenter actions OVS accepts
// under experimenter id 0x00002320, laid out as in OVS's nicira-ext.h and
// ofp-actions.c. Each starts with type 0xffff, len, experimenter, subtype.

const nxExperimenter = 0x00002320

// maxActionDepth bounds ct actions nested in ct actions. OVS accepts no
// nesting at all; the bound keeps hostile input from costing deep
// recursion in decoding and in JSON rendering.
const maxActionDepth = 4

// Nicira action subtypes.
const (
	NXASTResubmitTable = 14
	NXASTConjunction   = 34
	NXASTCT            = 35
	NXASTNAT           = 36
)

// NXActionCT flags.
const (
	NXCTFlagCommit = 1 << 0 // commit the connection to the tracker
	NXCTFlagForce  = 1 << 1 // commit in this direction, dropping an opposite one
)

// NXCTRecircNone as NXActionCT.RecircTable: do not recirculate.
const NXCTRecircNone = 0xff

// NXActionNAT flags.
const (
	NXNATFlagSrc         = 1 << 0
	NXNATFlagDst         = 1 << 1
	NXNATFlagPersistent  = 1 << 2
	NXNATFlagProtoHash   = 1 << 3
	NXNATFlagProtoRandom = 1 << 4
)

// range_present bits of nx_action_nat, in the order the values follow.
const (
	natIPv4Min  = 1 << 0
	natIPv4Max  = 1 << 1
	natIPv6Min  = 1 << 2
	natIPv6Max  = 1 << 3
	natProtoMin = 1 << 4
	natProtoMax = 1 << 5
)

// NXMHeader is the 32-bit NXM/OXM header naming field f, as used by Nicira
// actions that take a field as source (such as NXActionCT.ZoneSrc).
func NXMHeader(f FieldID) uint32 {
	return uint32(f.Class)<<16 | uint32(f.Field)<<9 | uint32(f.size())
}

func nxBegin(w *writer, subtype uint16) (start, at int) {
	start = len(w.b)
	w.u16(ActionTypeExperimenter)
	at = w.mark()
	w.u32(nxExperimenter)
	w.u16(subtype)
	return start, at
}

func nxJSON(name string, v any, subtype uint16, a Action) ([]byte, error) {
	return object(name, v, "type", ActionTypeExperimenter, "len", encodedLen(a),
		"experimenter", nxExperimenter, "subtype", subtype)
}

// NXActionCT sends the packet through the connection tracker: OVS's
// ct(commit,zone=Z,table=T,alg=A,exec(...)/nat(...)).
type NXActionCT struct {
	Flags uint16 `json:"flags"`
	// ZoneSrc is the NXMHeader of the field holding the zone, or 0 when
	// ZoneOfsNbits is the zone itself.
	ZoneSrc uint32 `json:"zone_src"`
	// ZoneOfsNbits is the immediate zone, or for a field source
	// offset<<6 | (nbits-1).
	ZoneOfsNbits uint16 `json:"zone_ofs_nbits"`
	// RecircTable is the table to continue in after tracking, or
	// NXCTRecircNone.
	RecircTable uint8  `json:"recirc_table"`
	Alg         uint16 `json:"alg"`
	// Actions are applied on commit; OVS allows NXActionNAT and
	// set_field of ct_mark/ct_label.
	Actions []Action `json:"actions"`
}

func (a *NXActionCT) appendTo(w *writer) {
	start, at := nxBegin(w, NXASTCT)
	w.u16(a.Flags)
	w.u32(a.ZoneSrc)
	w.u16(a.ZoneOfsNbits)
	w.u8(a.RecircTable)
	w.pad(3)
	w.u16(a.Alg)
	appendActions(w, a.Actions)
	w.fill(at, start, "ct action")
}

func (a *NXActionCT) MarshalJSON() ([]byte, error) {
	type plain NXActionCT
	p := *(*plain)(a)
	if p.Actions == nil {
		p.Actions = []Action{}
	}
	return nxJSON("NXActionCT", &p, NXASTCT, a)
}

// NXActionNAT is OVS's nat(src|dst=IPMIN[-IPMAX][:PORTMIN[-PORTMAX]]),
// valid only inside NXActionCT.Actions.
type NXActionNAT struct {
	Flags uint16 `json:"flags"`
	// IPMin and IPMax bound the address range; the zero Addr means absent.
	// Both must be of one family.
	IPMin netip.Addr `json:"range_ip_min"`
	IPMax netip.Addr `json:"range_ip_max"`
	// ProtoMin and ProtoMax bound the port range; 0 means absent.
	ProtoMin uint16 `json:"range_proto_min"`
	ProtoMax uint16 `json:"range_proto_max"`
}

func (a *NXActionNAT) rangePresent() uint16 {
	var p uint16
	for _, x := range []struct {
		ip     netip.Addr
		v4, v6 uint16
	}{{a.IPMin, natIPv4Min, natIPv6Min}, {a.IPMax, natIPv4Max, natIPv6Max}} {
		switch {
		case x.ip.Is4():
			p |= x.v4
		case x.ip.IsValid():
			p |= x.v6
		}
	}
	if a.ProtoMin != 0 {
		p |= natProtoMin
	}
	if a.ProtoMax != 0 {
		p |= natProtoMax
	}
	return p
}

func (a *NXActionNAT) appendTo(w *writer) {
	start, at := nxBegin(w, NXASTNAT)
	w.pad(2)
	w.u16(a.Flags)
	p := a.rangePresent()
	w.u16(p)
	if p&(natIPv4Min|natIPv6Min) != 0 {
		w.bytes(a.IPMin.AsSlice())
	}
	if p&(natIPv4Max|natIPv6Max) != 0 {
		w.bytes(a.IPMax.AsSlice())
	}
	if p&natProtoMin != 0 {
		w.u16(a.ProtoMin)
	}
	if p&natProtoMax != 0 {
		w.u16(a.ProtoMax)
	}
	w.padTo8(start)
	w.fill(at, start, "nat action")
}

func (a *NXActionNAT) MarshalJSON() ([]byte, error) {
	type plain NXActionNAT
	return nxJSON("NXActionNAT", (*plain)(a), NXASTNAT, a)
}

// NXActionResubmitTable is OVS's resubmit(IN_PORT,TABLE): look the packet
// up again in Table as if it came from InPort (0xfff8 for the real one).
type NXActionResubmitTable struct {
	InPort uint16 `json:"in_port"`
	Table  uint8  `json:"table_id"`
}

func (a *NXActionResubmitTable) appendTo(w *writer) {
	start, at := nxBegin(w, NXASTResubmitTable)
	w.u16(a.InPort)
	w.u8(a.Table)
	w.pad(3)
	w.fill(at, start, "resubmit action")
}

func (a *NXActionResubmitTable) MarshalJSON() ([]byte, error) {
	type plain NXActionResubmitTable
	return nxJSON("NXActionResubmitTable", (*plain)(a), NXASTResubmitTable, a)
}

// NXActionConjunction is OVS's conjunction(ID, CLAUSE/N_CLAUSES).
type NXActionConjunction struct {
	Clause   uint8  `json:"clause"`
	NClauses uint8  `json:"n_clauses"`
	ID       uint32 `json:"id"`
}

func (a *NXActionConjunction) appendTo(w *writer) {
	start, at := nxBegin(w, NXASTConjunction)
	w.u8(a.Clause)
	w.u8(a.NClauses)
	w.u32(a.ID)
	w.fill(at, start, "conjunction action")
}

func (a *NXActionConjunction) MarshalJSON() ([]byte, error) {
	type plain NXActionConjunction
	return nxJSON("NXActionConjunction", (*plain)(a), NXASTConjunction, a)
}

// NXActionUnknown is a Nicira action this package does not model, kept raw.
type NXActionUnknown struct {
	Subtype uint16 `json:"subtype"`
	Data    []byte `json:"data"`
}

func (a *NXActionUnknown) appendTo(w *writer) {
	start, at := nxBegin(w, a.Subtype)
	w.bytes(a.Data)
	w.fill(at, start, "nicira action")
}

func (a *NXActionUnknown) MarshalJSON() ([]byte, error) {
	type plain NXActionUnknown
	return object("NXActionUnknown", (*plain)(a), "type", ActionTypeExperimenter,
		"len", encodedLen(a), "experimenter", nxExperimenter)
}

// decodeNXAction decodes the rest of a Nicira action; p holds the bytes
// after the experimenter id.
func decodeNXAction(p *reader) Action {
	total := p.len() + 8
	sub := p.u16()
	switch sub {
	case NXASTCT:
		if p.depth >= maxActionDepth {
			p.fail("ct action", ErrUnsupported, "actions nested more than %d deep", maxActionDepth)
			return nil
		}
		p.depth++
		a := &NXActionCT{Flags: p.u16(), ZoneSrc: p.u32(), ZoneOfsNbits: p.u16(), RecircTable: p.u8()}
		p.skip(3)
		a.Alg = p.u16()
		a.Actions = decodeActions(p)
		return a
	case NXASTNAT:
		p.skip(2)
		a := &NXActionNAT{Flags: p.u16()}
		present := p.u16()
		if !p.ok() {
			return a
		}
		if present&^0x3f != 0 || present&(natIPv4Min|natIPv4Max) != 0 && present&(natIPv6Min|natIPv6Max) != 0 {
			p.fail("nat action", ErrUnsupported, "range_present %#x", present)
			return a
		}
		ipLen := 4
		if present&(natIPv6Min|natIPv6Max) != 0 {
			ipLen = 16
		}
		if present&(natIPv4Min|natIPv6Min) != 0 {
			a.IPMin, _ = netip.AddrFromSlice(p.take("nat action", ipLen))
		}
		if present&(natIPv4Max|natIPv6Max) != 0 {
			a.IPMax, _ = netip.AddrFromSlice(p.take("nat action", ipLen))
		}
		if present&natProtoMin != 0 {
			a.ProtoMin = p.u16()
		}
		if present&natProtoMax != 0 {
			a.ProtoMax = p.u16()
		}
		// A zero port in the wire form could not be told from "absent".
		if p.ok() && (present&natProtoMin != 0 && a.ProtoMin == 0 || present&natProtoMax != 0 && a.ProtoMax == 0) {
			p.fail("nat action", ErrUnsupported, "port range bound 0")
			return a
		}
		if want := pad8(total - p.len()); p.ok() && p.len() != want {
			p.fail("nat action", ErrBadLength, "%d bytes of padding, want %d", p.len(), want)
		}
		p.rest()
		return a
	case NXASTResubmitTable:
		a := &NXActionResubmitTable{InPort: p.u16(), Table: p.u8()}
		p.skip(3)
		return a
	case NXASTConjunction:
		return &NXActionConjunction{Clause: p.u8(), NClauses: p.u8(), ID: p.u32()}
	}
	return &NXActionUnknown{Subtype: sub, Data: p.rest()}
}
