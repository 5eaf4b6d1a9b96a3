package ofp

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
)

// OXM classes.
const (
	ClassNXM0          = 0x0000 // Nicira NXM_OF_* fields
	ClassNXM1          = 0x0001 // Nicira NXM_NX_* fields: registers, conntrack, tunnels
	ClassOpenFlowBasic = 0x8000
	ClassExperimenter  = 0xffff // followed by a 32-bit experimenter id
)

// onfExperimenter is the ONF experimenter id; Ryu/os-ken encode OF1.3
// extension fields such as pbb_uca under it with a 16-bit field type.
const onfExperimenter = 0x4f4e4600

// FieldID names an OXM field by class and field number.
type FieldID struct {
	Class uint16
	Field uint8
}

// OXM is one match field (or the target of a set_field action) in OXM TLV
// form. Value and Mask hold the field's bytes as on the wire, so fields this
// package does not know still round-trip.
type OXM struct {
	ID FieldID
	// Experimenter is the experimenter id of ClassExperimenter fields.
	Experimenter uint32
	Value        []byte
	// Mask is nil for an exact match; a set bit means "compare this bit".
	Mask []byte
}

type fieldKind uint8

const (
	kindUint fieldKind = iota
	kindMAC
	kindIPv4
	kindIPv6
	kindBytes
)

type fieldInfo struct {
	name string // os-ken's field name
	size int    // value size in bytes
	kind fieldKind
}

// The OpenFlow basic fields (OF1.3 spec, oxm_ofb_match_fields) and the
// Nicira fields we use, numbered as in OVS's meta-flow definitions.
var (
	FieldInPort       = FieldID{ClassOpenFlowBasic, 0}
	FieldInPhyPort    = FieldID{ClassOpenFlowBasic, 1}
	FieldMetadata     = FieldID{ClassOpenFlowBasic, 2}
	FieldEthDst       = FieldID{ClassOpenFlowBasic, 3}
	FieldEthSrc       = FieldID{ClassOpenFlowBasic, 4}
	FieldEthType      = FieldID{ClassOpenFlowBasic, 5}
	FieldVlanVID      = FieldID{ClassOpenFlowBasic, 6}
	FieldVlanPCP      = FieldID{ClassOpenFlowBasic, 7}
	FieldIPDSCP       = FieldID{ClassOpenFlowBasic, 8}
	FieldIPECN        = FieldID{ClassOpenFlowBasic, 9}
	FieldIPProto      = FieldID{ClassOpenFlowBasic, 10}
	FieldIPv4Src      = FieldID{ClassOpenFlowBasic, 11}
	FieldIPv4Dst      = FieldID{ClassOpenFlowBasic, 12}
	FieldTCPSrc       = FieldID{ClassOpenFlowBasic, 13}
	FieldTCPDst       = FieldID{ClassOpenFlowBasic, 14}
	FieldUDPSrc       = FieldID{ClassOpenFlowBasic, 15}
	FieldUDPDst       = FieldID{ClassOpenFlowBasic, 16}
	FieldSCTPSrc      = FieldID{ClassOpenFlowBasic, 17}
	FieldSCTPDst      = FieldID{ClassOpenFlowBasic, 18}
	FieldICMPv4Type   = FieldID{ClassOpenFlowBasic, 19}
	FieldICMPv4Code   = FieldID{ClassOpenFlowBasic, 20}
	FieldARPOp        = FieldID{ClassOpenFlowBasic, 21}
	FieldARPSPA       = FieldID{ClassOpenFlowBasic, 22}
	FieldARPTPA       = FieldID{ClassOpenFlowBasic, 23}
	FieldARPSHA       = FieldID{ClassOpenFlowBasic, 24}
	FieldARPTHA       = FieldID{ClassOpenFlowBasic, 25}
	FieldIPv6Src      = FieldID{ClassOpenFlowBasic, 26}
	FieldIPv6Dst      = FieldID{ClassOpenFlowBasic, 27}
	FieldIPv6FLabel   = FieldID{ClassOpenFlowBasic, 28}
	FieldICMPv6Type   = FieldID{ClassOpenFlowBasic, 29}
	FieldICMPv6Code   = FieldID{ClassOpenFlowBasic, 30}
	FieldIPv6NDTarget = FieldID{ClassOpenFlowBasic, 31}
	FieldIPv6NDSLL    = FieldID{ClassOpenFlowBasic, 32}
	FieldIPv6NDTLL    = FieldID{ClassOpenFlowBasic, 33}
	FieldMPLSLabel    = FieldID{ClassOpenFlowBasic, 34}
	FieldMPLSTC       = FieldID{ClassOpenFlowBasic, 35}
	FieldMPLSBoS      = FieldID{ClassOpenFlowBasic, 36}
	FieldPBBISID      = FieldID{ClassOpenFlowBasic, 37}
	FieldTunnelID     = FieldID{ClassOpenFlowBasic, 38}
	FieldIPv6ExtHdr   = FieldID{ClassOpenFlowBasic, 39}

	FieldTunIPv4Src = FieldID{ClassNXM1, 31}
	FieldTunIPv4Dst = FieldID{ClassNXM1, 32}
	FieldConjID     = FieldID{ClassNXM1, 37}
	FieldCtState    = FieldID{ClassNXM1, 105}
	FieldCtZone     = FieldID{ClassNXM1, 106}
	FieldCtMark     = FieldID{ClassNXM1, 107}
	FieldCtLabel    = FieldID{ClassNXM1, 108}
)

// FieldReg is Nicira register n (reg0..reg7), 32 bits each.
func FieldReg(n uint8) FieldID { return FieldID{ClassNXM1, n} }

// Bits of the ct_state field (OVS's CS_* flags).
const (
	CtStateNew  = 0x01
	CtStateEst  = 0x02
	CtStateRel  = 0x04
	CtStateRpl  = 0x08
	CtStateInv  = 0x10
	CtStateTrk  = 0x20
	CtStateSNAT = 0x40
	CtStateDNAT = 0x80
)

var fieldInfos = map[FieldID]fieldInfo{
	FieldInPort:       {"in_port", 4, kindUint},
	FieldInPhyPort:    {"in_phy_port", 4, kindUint},
	FieldMetadata:     {"metadata", 8, kindUint},
	FieldEthDst:       {"eth_dst", 6, kindMAC},
	FieldEthSrc:       {"eth_src", 6, kindMAC},
	FieldEthType:      {"eth_type", 2, kindUint},
	FieldVlanVID:      {"vlan_vid", 2, kindUint},
	FieldVlanPCP:      {"vlan_pcp", 1, kindUint},
	FieldIPDSCP:       {"ip_dscp", 1, kindUint},
	FieldIPECN:        {"ip_ecn", 1, kindUint},
	FieldIPProto:      {"ip_proto", 1, kindUint},
	FieldIPv4Src:      {"ipv4_src", 4, kindIPv4},
	FieldIPv4Dst:      {"ipv4_dst", 4, kindIPv4},
	FieldTCPSrc:       {"tcp_src", 2, kindUint},
	FieldTCPDst:       {"tcp_dst", 2, kindUint},
	FieldUDPSrc:       {"udp_src", 2, kindUint},
	FieldUDPDst:       {"udp_dst", 2, kindUint},
	FieldSCTPSrc:      {"sctp_src", 2, kindUint},
	FieldSCTPDst:      {"sctp_dst", 2, kindUint},
	FieldICMPv4Type:   {"icmpv4_type", 1, kindUint},
	FieldICMPv4Code:   {"icmpv4_code", 1, kindUint},
	FieldARPOp:        {"arp_op", 2, kindUint},
	FieldARPSPA:       {"arp_spa", 4, kindIPv4},
	FieldARPTPA:       {"arp_tpa", 4, kindIPv4},
	FieldARPSHA:       {"arp_sha", 6, kindMAC},
	FieldARPTHA:       {"arp_tha", 6, kindMAC},
	FieldIPv6Src:      {"ipv6_src", 16, kindIPv6},
	FieldIPv6Dst:      {"ipv6_dst", 16, kindIPv6},
	FieldIPv6FLabel:   {"ipv6_flabel", 4, kindUint},
	FieldICMPv6Type:   {"icmpv6_type", 1, kindUint},
	FieldICMPv6Code:   {"icmpv6_code", 1, kindUint},
	FieldIPv6NDTarget: {"ipv6_nd_target", 16, kindIPv6},
	FieldIPv6NDSLL:    {"ipv6_nd_sll", 6, kindMAC},
	FieldIPv6NDTLL:    {"ipv6_nd_tll", 6, kindMAC},
	FieldMPLSLabel:    {"mpls_label", 4, kindUint},
	FieldMPLSTC:       {"mpls_tc", 1, kindUint},
	FieldMPLSBoS:      {"mpls_bos", 1, kindUint},
	FieldPBBISID:      {"pbb_isid", 3, kindUint},
	FieldTunnelID:     {"tunnel_id", 8, kindUint},
	FieldIPv6ExtHdr:   {"ipv6_exthdr", 2, kindUint},
	FieldTunIPv4Src:   {"tun_ipv4_src", 4, kindIPv4},
	FieldTunIPv4Dst:   {"tun_ipv4_dst", 4, kindIPv4},
	FieldConjID:       {"conj_id", 4, kindUint},
	FieldCtState:      {"ct_state", 4, kindUint},
	FieldCtZone:       {"ct_zone", 2, kindUint},
	FieldCtMark:       {"ct_mark", 4, kindUint},
	FieldCtLabel:      {"ct_label", 16, kindBytes},
	FieldReg(0):       {"reg0", 4, kindUint},
	FieldReg(1):       {"reg1", 4, kindUint},
	FieldReg(2):       {"reg2", 4, kindUint},
	FieldReg(3):       {"reg3", 4, kindUint},
	FieldReg(4):       {"reg4", 4, kindUint},
	FieldReg(5):       {"reg5", 4, kindUint},
	FieldReg(6):       {"reg6", 4, kindUint},
	FieldReg(7):       {"reg7", 4, kindUint},
}

// onfFields are ONF experimenter fields, keyed by their 16-bit field type,
// which precedes the value.
var onfFields = map[uint16]fieldInfo{
	2560: {"pbb_uca", 1, kindUint},
}

func (f FieldID) size() int {
	if fi, ok := fieldInfos[f]; ok {
		return fi.size
	}
	return 8
}

func uintBytes(v uint64, n int) []byte {
	b := binary.BigEndian.AppendUint64(nil, v)
	return b[8-n:]
}

// Uint is an exact match on an integer field, in the field's own width
// (8 bytes for fields this package does not know).
func (f FieldID) Uint(v uint64) OXM {
	return OXM{ID: f, Value: uintBytes(v, f.size())}
}

// Masked is a masked match on an integer field, such as
// FieldCtState.Masked(CtStateTrk|CtStateNew, CtStateTrk|CtStateNew).
func (f FieldID) Masked(v, mask uint64) OXM {
	n := f.size()
	return OXM{ID: f, Value: uintBytes(v, n), Mask: uintBytes(mask, n)}
}

// MAC is an exact match on an Ethernet address field; mask, if given,
// makes it a masked match.
func (f FieldID) MAC(hw net.HardwareAddr, mask ...net.HardwareAddr) OXM {
	o := OXM{ID: f, Value: append([]byte(nil), hw...)}
	if len(mask) > 0 {
		o.Mask = append([]byte(nil), mask[0]...)
	}
	return o
}

// Addr is an exact match on an IPv4 or IPv6 address field.
func (f FieldID) Addr(a netip.Addr) OXM {
	return OXM{ID: f, Value: a.AsSlice()}
}

// Prefix matches an address field against a prefix: masked, unless the
// prefix covers the whole address, which is an exact match.
func (f FieldID) Prefix(p netip.Prefix) OXM {
	o := f.Addr(p.Masked().Addr())
	if p.Bits() < p.Addr().BitLen() {
		o.Mask = net.CIDRMask(p.Bits(), p.Addr().BitLen())
	}
	return o
}

func (o OXM) appendTo(w *writer) {
	n := len(o.Value) + len(o.Mask)
	if o.ID.Class == ClassExperimenter {
		n += 4
	}
	if n > 0xff {
		if w.err == nil {
			w.err = fmt.Errorf("ofp: encoding OXM field %d: %d bytes: %w", o.ID.Field, n, ErrTooLong)
		}
		return
	}
	fh := o.ID.Field << 1
	if o.Mask != nil {
		fh |= 1
	}
	w.u16(o.ID.Class)
	w.u8(fh)
	w.u8(uint8(n))
	if o.ID.Class == ClassExperimenter {
		w.u32(o.Experimenter)
	}
	w.bytes(o.Value)
	w.bytes(o.Mask)
}

func decodeOXM(r *reader) OXM {
	var o OXM
	o.ID.Class = r.u16()
	fh := r.u8()
	o.ID.Field = fh >> 1
	p := r.sub("OXM field", int(r.u8()))
	if o.ID.Class == ClassExperimenter {
		o.Experimenter = p.u32()
	}
	body := p.rest()
	if !r.ok() {
		return o
	}
	if fh&1 == 0 {
		o.Value = body
		return o
	}
	// A masked field carries value then mask of equal size.
	if len(body)%2 != 0 && o.ID.Class != ClassExperimenter {
		r.fail("OXM field", ErrBadLength, "masked field with odd length %d", len(body))
		return o
	}
	o.Value, o.Mask = body[:len(body)/2], body[len(body)/2:]
	return o
}

// info names the field and the bytes its value starts at.
func (o OXM) info() (fieldInfo, []byte, []byte, bool) {
	if o.ID.Class == ClassExperimenter {
		if o.Experimenter == onfExperimenter && o.Mask == nil && len(o.Value) >= 2 {
			if fi, ok := onfFields[binary.BigEndian.Uint16(o.Value)]; ok {
				return fi, o.Value[2:], nil, true
			}
		}
		return fieldInfo{}, nil, nil, false
	}
	fi, ok := fieldInfos[o.ID]
	return fi, o.Value, o.Mask, ok
}

func (o OXM) MarshalJSON() ([]byte, error) {
	fi, v, m, ok := o.info()
	var value, mask any
	if ok {
		value = fieldValue(fi, v)
		if m != nil {
			mask = fieldValue(fi, m)
		}
	} else {
		fi.name = fmt.Sprintf("oxm_%04x_%d", o.ID.Class, o.ID.Field)
		if o.ID.Class == ClassExperimenter {
			fi.name += fmt.Sprintf("_exp_%08x", o.Experimenter)
		}
		value = hex.EncodeToString(o.Value)
		if o.Mask != nil {
			mask = hex.EncodeToString(o.Mask)
		}
	}
	return json.Marshal(map[string]any{"OXMTlv": map[string]any{"field": fi.name, "value": value, "mask": mask}})
}

// fieldValue renders a value the way os-ken does: integers as numbers,
// addresses as text. Bytes of an unexpected size are shown as hex.
func fieldValue(fi fieldInfo, b []byte) any {
	if len(b) != fi.size {
		return hex.EncodeToString(b)
	}
	switch fi.kind {
	case kindUint:
		var v uint64
		for _, c := range b {
			v = v<<8 | uint64(c)
		}
		return v
	case kindMAC:
		return net.HardwareAddr(b).String()
	case kindIPv4, kindIPv6:
		a, _ := netip.AddrFromSlice(b)
		return a.String()
	}
	return hex.EncodeToString(b)
}

// Match is an OXM match (ofp_match of type OFPMT_OXM). Its zero value
// matches every packet.
type Match struct {
	Fields []OXM
}

const matchTypeOXM = 1

func (m Match) appendTo(w *writer) {
	start := len(w.b)
	w.u16(matchTypeOXM)
	at := w.mark()
	for _, f := range m.Fields {
		f.appendTo(w)
	}
	w.fill(at, start, "match")
	w.padTo8(start)
}

func decodeMatch(r *reader) Match {
	var m Match
	if typ := r.u16(); r.ok() && typ != matchTypeOXM {
		r.fail("match", ErrUnsupported, "match type %d, only OXM (1) is OpenFlow 1.3", typ)
		return m
	}
	n := int(r.u16())
	if r.ok() && n < 4 {
		r.fail("match", ErrBadLength, "length %d below 4", n)
		return m
	}
	fr := r.sub("match", n-4)
	r.skip(pad8(n))
	m.Fields = []OXM{}
	for fr.ok() && fr.len() > 0 {
		if fr.len() < 4 {
			fr.fail("match", ErrTruncated, "%d stray bytes", fr.len())
			break
		}
		m.Fields = append(m.Fields, decodeOXM(fr))
	}
	return m
}

func (m Match) MarshalJSON() ([]byte, error) {
	fields := m.Fields
	if fields == nil {
		fields = []OXM{}
	}
	w := &writer{}
	m.appendTo(w)
	n := 0
	if len(w.b) >= 4 {
		n = int(binary.BigEndian.Uint16(w.b[2:]))
	}
	return object("OFPMatch", nil, "type", matchTypeOXM, "length", n, "oxm_fields", fields)
}
