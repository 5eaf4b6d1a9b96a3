package ofsim

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	ipA  = netip.MustParseAddr("192.0.2.10")
	ipB  = netip.MustParseAddr("192.0.2.20")
	vip  = netip.MustParseAddr("198.51.100.80")
)

func tcp(in uint32, src netip.AddrPort, dst netip.AddrPort, flags uint16) Packet {
	return Packet{InPort: in, EthSrc: macA, EthDst: macB, EthType: EthIPv4, Src: src.Addr(), Dst: dst.Addr(),
		Proto: ProtoTCP, SrcPort: src.Port(), DstPort: dst.Port(), TCPFlags: flags}
}

func ip4() ofp.OXM { return ofp.FieldEthType.Uint(EthIPv4) }
func ct(bits uint64) ofp.OXM {
	return ofp.FieldCtState.Masked(bits|ofp.CtStateTrk, bits|ofp.CtStateTrk)
}
func out(p uint32) ofp.Instruction { return ofp.ApplyActions(&ofp.ActionOutput{Port: p}) }
func flow(table uint8, prio uint16, note string, m []ofp.OXM, is ...ofp.Instruction) controller.Flow {
	return controller.Flow{Table: table, Priority: prio, Note: note, Match: ofp.Match{Fields: m}, Instructions: is}
}

// A stateful firewall with a DNAT: port 1 may start connections to port
// 2; port 2 only answers. Connections to vip:80 go to B:8080.
func firewall(t *testing.T) *Switch {
	t.Helper()
	s, err := New([]controller.Flow{
		flow(0, 0, "miss", nil),
		flow(0, 10, "ip to ct", []ofp.OXM{ip4()}, ofp.ApplyActions(&ofp.NXActionCT{ZoneOfsNbits: 3, RecircTable: 1,
			Actions: []ofp.Action{&ofp.NXActionNAT{}}})),
		flow(1, 0, "drop", nil),
		flow(1, 50, "invalid", []ofp.OXM{ip4(), ct(ofp.CtStateInv)}),
		flow(1, 20, "1 starts to vip", []ofp.OXM{ofp.FieldInPort.Uint(1), ip4(), ct(ofp.CtStateNew), ofp.FieldIPProto.Uint(ProtoTCP),
			ofp.FieldIPv4Dst.Addr(vip), ofp.FieldTCPDst.Uint(80)},
			&ofp.InstructionMeter{MeterID: 7},
			ofp.ApplyActions(&ofp.NXActionCT{Flags: ofp.NXCTFlagCommit, ZoneOfsNbits: 3, RecircTable: ofp.NXCTRecircNone,
				Actions: []ofp.Action{&ofp.NXActionNAT{Flags: ofp.NXNATFlagDst, IPMin: ipB, ProtoMin: 8080}}},
				&ofp.ActionOutput{Port: 2})),
		flow(1, 10, "1 starts", []ofp.OXM{ofp.FieldInPort.Uint(1), ip4(), ct(ofp.CtStateNew)},
			ofp.ApplyActions(&ofp.NXActionCT{Flags: ofp.NXCTFlagCommit, ZoneOfsNbits: 3, RecircTable: ofp.NXCTRecircNone}),
			&ofp.InstructionGotoTable{TableID: 2}),
		flow(1, 10, "established", []ofp.OXM{ip4(), ct(ofp.CtStateEst)}, &ofp.InstructionGotoTable{TableID: 2}),
		flow(2, 10, "to B's subnet", []ofp.OXM{ip4(), ofp.FieldIPv4Dst.Prefix(netip.MustParsePrefix("192.0.2.16/28"))},
			ofp.WriteActions(&ofp.ActionOutput{Port: 2})),
		flow(2, 5, "elsewhere", []ofp.OXM{ip4()}, ofp.WriteActions(&ofp.ActionOutput{Port: 1})),
	}, []controller.Meter{{ID: 7, RateKbps: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, s *Switch, p Packet) *Trace {
	t.Helper()
	tr, err := s.Run(p)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestConnectionStates(t *testing.T) {
	s := firewall(t)
	a, b := netip.AddrPortFrom(ipA, 40000), netip.AddrPortFrom(ipB, 22)

	// B cannot start anything, not even by claiming to answer.
	if tr := run(t, s, tcp(2, b, a, TCPSyn)); tr.Note() != "drop" || len(tr.Outputs) != 0 {
		t.Errorf("unsolicited SYN from B: %q %v", tr.Note(), tr.Outputs)
	}
	if tr := run(t, s, tcp(2, b, a, TCPSyn|TCPAck)); tr.Note() != "invalid" {
		t.Errorf("SYN-ACK without a connection: %q, want invalid", tr.Note())
	}
	// A's SYN is new, committed and delivered; B's answer is +est+rpl.
	tr := run(t, s, tcp(1, a, b, TCPSyn))
	if tr.Steps[1].CtState != ofp.CtStateTrk|ofp.CtStateNew || len(tr.OutputTo(2)) != 1 {
		t.Fatalf("A's SYN: steps %+v outputs %v", tr.Steps, tr.Outputs)
	}
	tr = run(t, s, tcp(2, b, a, TCPSyn|TCPAck))
	if got := tr.Steps[1].CtState; got != ofp.CtStateTrk|ofp.CtStateEst|ofp.CtStateRpl || tr.Note() != "elsewhere" || len(tr.OutputTo(1)) != 1 {
		t.Errorf("B's SYN-ACK: ct_state %#x, %q, outputs %v", got, tr.Note(), tr.Outputs)
	}
	if tr := run(t, s, tcp(1, a, b, TCPAck)); tr.Steps[1].CtState != ofp.CtStateTrk|ofp.CtStateEst {
		t.Errorf("A's ACK: ct_state %#x, want est", tr.Steps[1].CtState)
	}
	// A segment of an unknown connection: Open vSwitch's tracker picks
	// up a connection under way (an ACK is new), never from a SYN-ACK or
	// impossible flags.
	for _, tt := range []struct {
		flags uint16
		want  string
	}{
		{TCPAck, "to B's subnet"},
		{TCPRst, "to B's subnet"},
		{TCPFin | TCPAck, "to B's subnet"},
		{TCPSyn | TCPAck, "invalid"},
		{TCPSyn | TCPRst, "invalid"},
		{TCPSyn | TCPFin, "invalid"},
		{TCPFin, "invalid"},
		{0, "invalid"},
	} {
		s := firewall(t)
		if tr := run(t, s, tcp(1, netip.AddrPortFrom(ipA, 40001), b, tt.flags)); tr.Note() != tt.want {
			t.Errorf("flags %#x of no connection: %q, want %q", tt.flags, tr.Note(), tt.want)
		}
	}
}

func TestDNATAndUndo(t *testing.T) {
	s := firewall(t)
	a, v := netip.AddrPortFrom(ipA, 40000), netip.AddrPortFrom(vip, 80)
	tr := run(t, s, tcp(1, a, v, TCPSyn))
	got := tr.OutputTo(2)
	if tr.Note() != "1 starts to vip" || len(got) != 1 || got[0].Dst != ipB || got[0].DstPort != 8080 || got[0].Src != ipA {
		t.Fatalf("SYN to the VIP: %q %v", tr.Note(), tr.Outputs)
	}
	if m := s.Meter(7); m.Packets != 1 || m.Bytes != 64 {
		t.Errorf("meter 7 counted %+v", m)
	}
	// B answers from 8080; the tracker's nat undoes the DNAT.
	tr = run(t, s, tcp(2, netip.AddrPortFrom(ipB, 8080), a, TCPSyn|TCPAck))
	back := tr.OutputTo(1)
	if len(back) != 1 || back[0].Src != vip || back[0].SrcPort != 80 || back[0].Dst != ipA {
		t.Fatalf("answer: %q %v, want from %s", tr.Note(), tr.Outputs, v)
	}
	if tr.Steps[1].CtState&ofp.CtStateDNAT == 0 {
		t.Errorf("answer's ct_state %#x lacks dnat", tr.Steps[1].CtState)
	}
	// A's next segment is rewritten again on its way.
	tr = run(t, s, tcp(1, a, v, TCPAck))
	if fwd := tr.OutputTo(2); len(fwd) != 1 || fwd[0].Dst != ipB || fwd[0].DstPort != 8080 {
		t.Errorf("A's ACK: %q %v", tr.Note(), tr.Outputs)
	}
}

// The kernel's tracker has a connection's packets new until a reply has
// passed: a UDP flow's second datagram, sent before any answer, is
// +new+dnat (already translated), not +est; after the answer, +est.
func TestNewUntilReply(t *testing.T) {
	s := firewall(t)
	udp := func(in uint32, src, dst netip.AddrPort) Packet {
		p := tcp(in, src, dst, 0)
		p.Proto = ProtoUDP
		return p
	}
	a, b := netip.AddrPortFrom(ipA, 40000), netip.AddrPortFrom(ipB, 53)
	run(t, s, udp(1, a, b))
	if tr := run(t, s, udp(1, a, b)); tr.Steps[1].CtState != ofp.CtStateTrk|ofp.CtStateNew {
		t.Errorf("second datagram before an answer: ct_state %#x, want trk+new", tr.Steps[1].CtState)
	}
	if tr := run(t, s, udp(2, b, a)); tr.Steps[1].CtState != ofp.CtStateTrk|ofp.CtStateEst|ofp.CtStateRpl {
		t.Errorf("answer: ct_state %#x, want trk+est+rpl", tr.Steps[1].CtState)
	}
	if tr := run(t, s, udp(1, a, b)); tr.Steps[1].CtState != ofp.CtStateTrk|ofp.CtStateEst {
		t.Errorf("datagram after the answer: ct_state %#x, want trk+est", tr.Steps[1].CtState)
	}

	// Through the DNAT (TCP, a retransmitted SYN): translated, +new+dnat.
	v := netip.AddrPortFrom(vip, 80)
	run(t, s, tcp(1, a, v, TCPSyn))
	tr := run(t, s, tcp(1, a, v, TCPSyn))
	if got := tr.Steps[1].CtState; got != ofp.CtStateTrk|ofp.CtStateNew|ofp.CtStateDNAT {
		t.Errorf("retransmitted SYN to the VIP: ct_state %#x, want trk+new+dnat", got)
	}
	if fwd := tr.OutputTo(2); len(fwd) != 1 || fwd[0].Dst != ipB || fwd[0].DstPort != 8080 {
		t.Errorf("retransmitted SYN: %q %v, want it translated to %s:8080", tr.Note(), tr.Outputs, ipB)
	}
}

func TestRelatedAndEcho(t *testing.T) {
	s := firewall(t)
	a, b := netip.AddrPortFrom(ipA, 40000), netip.AddrPortFrom(ipB, 22)
	syn := tcp(1, a, b, TCPSyn)
	run(t, s, syn)
	icmpErr := Packet{InPort: 2, EthType: EthIPv4, Src: ipB, Dst: ipA, Proto: ProtoICMP, ICMPType: 3, ICMPCode: 3, Inner: &syn}
	if tr := run(t, s, icmpErr); tr.Steps[1].CtState != ofp.CtStateTrk|ofp.CtStateRel {
		t.Errorf("ICMP error quoting A's SYN: ct_state %#x, want rel", tr.Steps[1].CtState)
	}
	stray := tcp(1, a, netip.AddrPortFrom(ipB, 23), TCPSyn)
	icmpErr.Inner = &stray
	if tr := run(t, s, icmpErr); tr.Note() != "invalid" {
		t.Errorf("ICMP error quoting no connection: %q", tr.Note())
	}
	reply := Packet{InPort: 2, EthType: EthIPv4, Src: ipB, Dst: ipA, Proto: ProtoICMP, ICMPType: 0, ICMPID: 9}
	if tr := run(t, s, reply); tr.Note() != "invalid" {
		t.Errorf("echo reply without a request: %q", tr.Note())
	}
	req := reply
	req.InPort, req.Src, req.Dst, req.ICMPType = 1, ipA, ipB, 8
	run(t, s, req)
	if tr := run(t, s, reply); tr.Steps[1].CtState&ofp.CtStateRpl == 0 || len(tr.OutputTo(1)) != 1 {
		t.Errorf("echo reply after the request: %+v %v", tr.Steps, tr.Outputs)
	}
}

func TestOutputNotBackToInPort(t *testing.T) {
	s, err := New([]controller.Flow{flow(0, 1, "flood", nil, ofp.ApplyActions(&ofp.ActionOutput{Port: 1}, &ofp.ActionOutput{Port: 2}))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := run(t, s, Packet{InPort: 1, EthType: EthARP})
	if len(tr.Outputs) != 1 || tr.Outputs[0].Port != 2 {
		t.Errorf("outputs %v, want port 2 only", tr.Outputs)
	}
}

// The simulator refuses flows the switch would refuse, and what it cannot
// model, rather than guess.
func TestRefusedFlows(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    controller.Flow
		want string
	}{
		{"tcp port without ip_proto", flow(0, 1, "x", []ofp.OXM{ip4(), ofp.FieldTCPDst.Uint(80)}), "needs ip_proto"},
		{"ipv4 without eth_type", flow(0, 1, "x", []ofp.OXM{ofp.FieldIPv4Dst.Addr(ipA)}), "needs eth_type"},
		{"ipv6 field on an IPv4 match", flow(0, 1, "x", []ofp.OXM{ip4(), ofp.FieldIPv6Dst.Addr(netip.MustParseAddr("2001:db8::1"))}), "needs eth_type"},
		{"ND target without its ICMPv6 type", flow(0, 1, "x", []ofp.OXM{ofp.FieldEthType.Uint(EthIPv6), ofp.FieldIPProto.Uint(ProtoICMPv6),
			ofp.FieldIPv6NDTarget.Addr(netip.MustParseAddr("2001:db8::1"))}), "needs icmpv6_type"},
		{"value outside mask", flow(0, 1, "x", []ofp.OXM{{ID: ofp.FieldEthType, Value: []byte{8, 1}, Mask: []byte{0xff, 0}}}), "outside the mask"},
		{"goto backwards", flow(2, 1, "x", nil, &ofp.InstructionGotoTable{TableID: 1}), "goto table 1"},
		{"missing meter", flow(0, 1, "x", nil, &ofp.InstructionMeter{MeterID: 3}), "meter 3"},
		{"ct on ARP", flow(0, 1, "x", []ofp.OXM{ofp.FieldEthType.Uint(EthARP)}, ofp.ApplyActions(&ofp.NXActionCT{RecircTable: 1})), "ct needs"},
		{"nat without commit", flow(0, 1, "x", []ofp.OXM{ip4()}, ofp.ApplyActions(&ofp.NXActionCT{RecircTable: ofp.NXCTRecircNone,
			Actions: []ofp.Action{&ofp.NXActionNAT{Flags: ofp.NXNATFlagDst, IPMin: ipB}}})), "needs commit"},
		{"group", flow(0, 1, "x", nil, ofp.ApplyActions(&ofp.ActionGroup{GroupID: 1})), "not modelled"},
		{"flood", flow(0, 1, "x", nil, out(ofp.PortFlood)), "not modelled"},
	} {
		_, err := New([]controller.Flow{tt.f}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
		if tt.want == "not modelled" && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v is not ErrUnsupported", tt.name, err)
		}
	}
	_, err := New([]controller.Flow{flow(0, 1, "a", []ofp.OXM{ip4()}), flow(0, 1, "b", []ofp.OXM{ip4()})}, nil)
	if err == nil || !strings.Contains(err.Error(), "same entry") {
		t.Errorf("two flows of one entry: %v", err)
	}
	s, err := New([]controller.Flow{flow(0, 1, "a", []ofp.OXM{ip4()}), flow(0, 1, "b", []ofp.OXM{ofp.FieldInPort.Uint(1)})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(Packet{InPort: 1, EthType: EthIPv4}); err == nil || !strings.Contains(err.Error(), "both match") {
		t.Errorf("overlapping flows of one priority: %v", err)
	}
}

// IPv6 fields match by their own prerequisites: an IPv6 packet never
// hits an IPv4 flow.
func TestIPv6Fields(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::20")
	s, err := New([]controller.Flow{
		flow(0, 20, "v6 tcp 80", []ofp.OXM{ofp.FieldEthType.Uint(EthIPv6), ofp.FieldIPv6Dst.Prefix(netip.MustParsePrefix("2001:db8::/64")),
			ofp.FieldIPProto.Uint(ProtoTCP), ofp.FieldTCPDst.Uint(80)}, out(2)),
		flow(0, 20, "NS for v6", []ofp.OXM{ofp.FieldEthType.Uint(EthIPv6), ofp.FieldIPProto.Uint(ProtoICMPv6),
			ofp.FieldICMPv6Type.Uint(135), ofp.FieldIPv6NDTarget.Addr(v6)}, out(2)),
		flow(0, 10, "v4", []ofp.OXM{ip4()}, out(3)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := Packet{InPort: 1, EthType: EthIPv6, Src: netip.MustParseAddr("2001:db8::10"), Dst: v6, Proto: ProtoTCP, DstPort: 80, TCPFlags: TCPSyn}
	if tr := run(t, s, p); tr.Note() != "v6 tcp 80" {
		t.Errorf("IPv6 TCP: %q", tr.Note())
	}
	ns := Packet{InPort: 1, EthType: EthIPv6, Proto: ProtoICMPv6, ICMPType: 135, NDTarget: v6}
	if tr := run(t, s, ns); tr.Note() != "NS for v6" {
		t.Errorf("neighbour solicitation: %q", tr.Note())
	}
	p.DstPort = 81
	if tr := run(t, s, p); tr.Note() != "table miss" {
		t.Errorf("IPv6 to another port: %q, want a miss (never the IPv4 flow)", tr.Note())
	}
}

func TestReset(t *testing.T) {
	s := firewall(t)
	a, v := netip.AddrPortFrom(ipA, 40000), netip.AddrPortFrom(vip, 80)
	run(t, s, tcp(1, a, v, TCPSyn))
	s.Reset()
	if m := s.Meter(7); m.Packets != 0 {
		t.Errorf("meter after Reset: %+v", m)
	}
	if tr := run(t, s, tcp(2, netip.AddrPortFrom(ipB, 8080), a, TCPSyn|TCPAck)); tr.Note() != "invalid" {
		t.Errorf("an answer after Reset: %q, want invalid (no connection)", tr.Note())
	}
}
