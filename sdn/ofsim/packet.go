package ofsim

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"paradrop/sdn/ofp"
)

// Ethernet types and IP protocols the simulator parses.
const (
	EthIPv4 = 0x0800
	EthARP  = 0x0806
	EthIPv6 = 0x86dd

	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flags the tracker looks at.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPAck = 0x10
)

// Packet is a frame as the switch parses it. Which fields exist follows
// from EthType and Proto, as in OpenFlow: a flow matching a field the
// packet does not have does not match it.
type Packet struct {
	InPort         uint32
	EthSrc, EthDst net.HardwareAddr
	EthType        uint16

	// IPv4 or IPv6, by EthType.
	Src, Dst netip.Addr
	Proto    uint8
	// SrcPort and DstPort are TCP or UDP ports.
	SrcPort, DstPort uint16
	TCPFlags         uint16
	// ICMP (v4 or v6): type, code, and the echo identifier.
	ICMPType, ICMPCode uint8
	ICMPID             uint16
	// NDTarget is the target of an IPv6 neighbour solicitation or
	// advertisement; NDSLL and NDTLL its link-layer address options
	// (nil when absent, which a flow sees as all zeros, as in OVS).
	NDTarget     netip.Addr
	NDSLL, NDTLL net.HardwareAddr
	// Inner is the header an ICMP error quotes, as it was sent.
	Inner *Packet

	// ARP.
	ARPOp          uint16
	ARPSPA, ARPTPA netip.Addr
	ARPSHA, ARPTHA net.HardwareAddr

	// Len is the frame's length in bytes, for the meters; 0 counts as 64.
	Len int
}

// Broadcast is the Ethernet broadcast address.
var Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (p *Packet) clone() *Packet {
	q := *p
	q.EthSrc, q.EthDst = slices.Clone(p.EthSrc), slices.Clone(p.EthDst)
	q.ARPSHA, q.ARPTHA = slices.Clone(p.ARPSHA), slices.Clone(p.ARPTHA)
	q.NDSLL, q.NDTLL = slices.Clone(p.NDSLL), slices.Clone(p.NDTLL)
	return &q
}

func (p *Packet) isIP() bool { return p.EthType == EthIPv4 || p.EthType == EthIPv6 }

func (p *Packet) isICMP() bool {
	return p.EthType == EthIPv4 && p.Proto == ProtoICMP || p.EthType == EthIPv6 && p.Proto == ProtoICMPv6
}

// isICMPError says the packet is an ICMP error quoting another.
func (p *Packet) isICMPError() bool {
	if !p.isICMP() {
		return false
	}
	if p.EthType == EthIPv4 {
		return p.ICMPType == 3 || p.ICMPType == 11 || p.ICMPType == 12
	}
	return p.ICMPType >= 1 && p.ICMPType <= 4
}

// isEcho says the packet is an ICMP echo request or reply.
func (p *Packet) isEcho() (request, ok bool) {
	if !p.isICMP() {
		return false, false
	}
	if p.EthType == EthIPv4 {
		return p.ICMPType == 8, p.ICMPType == 8 || p.ICMPType == 0
	}
	return p.ICMPType == 128, p.ICMPType == 128 || p.ICMPType == 129
}

func (p *Packet) String() string {
	switch {
	case p.EthType == EthARP:
		return fmt.Sprintf("in_port=%d arp op=%d %s(%s) asks %s", p.InPort, p.ARPOp, p.ARPSPA, p.ARPSHA, p.ARPTPA)
	case p.isICMP():
		return fmt.Sprintf("in_port=%d %s>%s icmp type=%d id=%d", p.InPort, p.Src, p.Dst, p.ICMPType, p.ICMPID)
	case p.isIP():
		return fmt.Sprintf("in_port=%d %s>%s proto=%d flags=%#x (%s>%s)", p.InPort,
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.Proto, p.TCPFlags, p.EthSrc, p.EthDst)
	}
	return fmt.Sprintf("in_port=%d eth_type=%#x", p.InPort, p.EthType)
}

// meta is the pipeline's state beside the headers.
type meta struct {
	ctState uint32
	ctZone  uint16
}

func u(v uint64, n int) []byte {
	b := binary.BigEndian.AppendUint64(nil, v)
	return b[8-n:]
}

// field returns the packet's value of f in the wire's byte form, and
// whether the packet has the field at all.
func (p *Packet) field(f ofp.FieldID, m meta) ([]byte, bool) {
	v4, v6 := p.EthType == EthIPv4, p.EthType == EthIPv6
	switch f {
	case ofp.FieldInPort:
		return u(uint64(p.InPort), 4), true
	case ofp.FieldEthDst:
		return p.EthDst, true
	case ofp.FieldEthSrc:
		return p.EthSrc, true
	case ofp.FieldEthType:
		return u(uint64(p.EthType), 2), true
	case ofp.FieldIPProto:
		return []byte{p.Proto}, p.isIP()
	case ofp.FieldIPv4Src:
		return p.Src.AsSlice(), v4
	case ofp.FieldIPv4Dst:
		return p.Dst.AsSlice(), v4
	case ofp.FieldIPv6Src:
		return p.Src.AsSlice(), v6
	case ofp.FieldIPv6Dst:
		return p.Dst.AsSlice(), v6
	case ofp.FieldTCPSrc:
		return u(uint64(p.SrcPort), 2), p.isIP() && p.Proto == ProtoTCP
	case ofp.FieldTCPDst:
		return u(uint64(p.DstPort), 2), p.isIP() && p.Proto == ProtoTCP
	case ofp.FieldUDPSrc:
		return u(uint64(p.SrcPort), 2), p.isIP() && p.Proto == ProtoUDP
	case ofp.FieldUDPDst:
		return u(uint64(p.DstPort), 2), p.isIP() && p.Proto == ProtoUDP
	case ofp.FieldICMPv4Type:
		return []byte{p.ICMPType}, v4 && p.Proto == ProtoICMP
	case ofp.FieldICMPv4Code:
		return []byte{p.ICMPCode}, v4 && p.Proto == ProtoICMP
	case ofp.FieldICMPv6Type:
		return []byte{p.ICMPType}, v6 && p.Proto == ProtoICMPv6
	case ofp.FieldICMPv6Code:
		return []byte{p.ICMPCode}, v6 && p.Proto == ProtoICMPv6
	case ofp.FieldIPv6NDTarget:
		return p.NDTarget.AsSlice(), v6 && p.Proto == ProtoICMPv6 && (p.ICMPType == 135 || p.ICMPType == 136)
	case ofp.FieldIPv6NDSLL:
		return ndLL(p.NDSLL), v6 && p.Proto == ProtoICMPv6 && p.ICMPType == 135
	case ofp.FieldIPv6NDTLL:
		return ndLL(p.NDTLL), v6 && p.Proto == ProtoICMPv6 && p.ICMPType == 136
	case ofp.FieldARPOp:
		return u(uint64(p.ARPOp), 2), p.EthType == EthARP
	case ofp.FieldARPSPA:
		return p.ARPSPA.AsSlice(), p.EthType == EthARP
	case ofp.FieldARPTPA:
		return p.ARPTPA.AsSlice(), p.EthType == EthARP
	case ofp.FieldARPSHA:
		return p.ARPSHA, p.EthType == EthARP
	case ofp.FieldARPTHA:
		return p.ARPTHA, p.EthType == EthARP
	case ofp.FieldCtState:
		return u(uint64(m.ctState), 4), true
	case ofp.FieldCtZone:
		return u(uint64(m.ctZone), 2), true
	}
	return nil, false
}

// ndLL is a neighbour discovery link-layer option as a flow sees it.
func ndLL(mac net.HardwareAddr) []byte {
	if mac == nil {
		return make([]byte, 6)
	}
	return mac
}

// setField rewrites one header field, as a set_field action does.
func (p *Packet) setField(o ofp.OXM) error {
	addr := func() (netip.Addr, error) {
		a, ok := netip.AddrFromSlice(o.Value)
		if !ok {
			return a, fmt.Errorf("set_field: %d-byte address", len(o.Value))
		}
		return a.Unmap(), nil
	}
	port := func() (uint16, error) {
		if len(o.Value) != 2 {
			return 0, fmt.Errorf("set_field: %d-byte port", len(o.Value))
		}
		return binary.BigEndian.Uint16(o.Value), nil
	}
	var err error
	switch o.ID {
	case ofp.FieldEthDst:
		p.EthDst = slices.Clone(net.HardwareAddr(o.Value))
	case ofp.FieldEthSrc:
		p.EthSrc = slices.Clone(net.HardwareAddr(o.Value))
	case ofp.FieldIPv4Src, ofp.FieldIPv6Src:
		p.Src, err = addr()
	case ofp.FieldIPv4Dst, ofp.FieldIPv6Dst:
		p.Dst, err = addr()
	case ofp.FieldTCPSrc, ofp.FieldUDPSrc:
		p.SrcPort, err = port()
	case ofp.FieldTCPDst, ofp.FieldUDPDst:
		p.DstPort, err = port()
	default:
		return fmt.Errorf("set_field of %v is not modelled", o.ID)
	}
	return err
}
