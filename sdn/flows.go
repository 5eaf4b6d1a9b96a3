package sdn

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// The bridge's pipeline. Every packet enters table 0; IPv4 passes the
// connection tracker once (table 1) and is judged in table 2, whose
// verdicts go to table 3 to be delivered; ARP is judged in table 4.
// What table 3 sends to the LAN goes out by table 5.
const (
	tableClassify = 0 // per in_port: anti-spoofing, egress meters, IPv4 vs ARP
	tableCT       = 1 // ct(zone, nat) then table 2 with ct_state known
	tablePolicy   = 2 // allow (commit) or drop, by who talks to whom
	tableOutput   = 3 // deliver by destination; ingress meters
	tableARP      = 4 // who may resolve whom
	tableLAN      = 5 // which LAN port: the one a host was learned on
)

// ctZone is the conntrack zone of the bridge's traffic. One zone for all
// of it is enough because every packet passes the tracker exactly once per
// direction (the switch never hairpins through the host).
const ctZone = 5

const (
	ethIPv4  = 0x0800
	ethARP   = 0x0806
	arpReply = 2
)

const protoICMP = 1

// topology is what the flows depend on besides the chutes: the gateway's
// addresses and the bridge's non-chute ports.
type topology struct {
	Subnet     netip.Prefix // chute subnet
	Gateway    netip.Addr   // the gateway's address in Subnet (.1)
	LANAddr    netip.Prefix // the gateway's LAN address; invalid if no LAN
	GatewayMAC net.HardwareAddr
	LANPorts   []uint32 // OpenFlow ports of the LAN interfaces
	APIPort    uint16   // the chutes' API at Gateway and Gateway6, tcp; 0 for none
	// LANHosts are the LAN hosts' MACs (net.HardwareAddr.String) and the
	// LAN port each was learned on (see learn.go).
	LANHosts map[string]uint32
	// LANHostIPs are the IPv4 addresses each LAN host claimed in its ARP
	// (hosts.go).
	LANHostIPs map[string][]netip.Addr
	// Subnet6 is the chutes' IPv6 /64 (a ULA) and Gateway6 the gateway's
	// address in it; invalid for IPv4 only (see flows6.go).
	Subnet6  netip.Prefix
	Gateway6 netip.Addr
	// Global6 is the chutes' global IPv6 /64, from the gateway's
	// delegated prefix; invalid for none (see wan6.go).
	Global6 netip.Prefix
	// LANAddr6 is the gateway's IPv6 address on the LAN; invalid if none
	// (see dnat.go).
	LANAddr6 netip.Prefix
}

// attached is a chute as the flows see it: its declaration and port.
type attached struct {
	Chute
	Port uint32
}

// id is the chute's number: its host index in the subnet, stable for as
// long as its address, never 0. It is the high half of its flows'
// cookies and names its meters.
func (a *attached) id(subnet netip.Prefix) uint32 {
	return hostIndex(subnet, a.IP)
}

func hostIndex(subnet netip.Prefix, ip netip.Addr) uint32 {
	b, n := subnet.Masked().Addr().As4(), ip.As4()
	return binary.BigEndian.Uint32(n[:]) - binary.BigEndian.Uint32(b[:])
}

// Meter ids: two per chute.
func egressMeter(id uint32) uint32  { return id << 1 }
func ingressMeter(id uint32) uint32 { return id<<1 | 1 }

// cookieMask selects one chute's flows (or, with id 0, the base flows).
const cookieMask = 0xffffffff00000000

// derived is the desired state of the switch, and the bookkeeping to read
// its counters back per chute.
type derived struct {
	Flows  []controller.Flow
	Meters []controller.Meter
	// TX and RX are the cookies whose counters are a chute's sent and
	// received traffic.
	TX, RX map[uint64]bool
	// Hosts are the cookies whose counters are a LAN host's ARP, to the
	// host's MAC (hosts.go).
	Hosts map[uint64]string
}

// strip drops the flows' matches and instructions once the controller
// holds them (encoded): what the network reads of its last derivation
// (rules, counters, hosts) is each flow's table, priority, cookie and
// note, and the cookie sets.
func (d *derived) strip() {
	for i := range d.Flows {
		d.Flows[i].Match, d.Flows[i].Instructions = ofp.Match{}, nil
	}
}

// builder accumulates flows of one owner (a chute, or the base with id 0).
type builder struct {
	d  *derived
	id uint32
}

func (b builder) add(table uint8, prio uint16, note string, m []ofp.OXM, is ...ofp.Instruction) uint64 {
	match := ofp.Match{Fields: m}
	f := controller.Flow{
		Table: table, Priority: prio, Match: match, Instructions: is, Note: note,
		Cookie: uint64(b.id)<<32 | uint64(flowHash(table, prio, match)),
	}
	b.d.Flows = append(b.d.Flows, f)
	return f.Cookie
}

// flowHash is the low half of a cookie: a hash of the flow's identity, so
// a flow keeps its cookie when other rules come and go.
func flowHash(table uint8, prio uint16, m ofp.Match) uint32 {
	h := fnv.New32a()
	h.Write([]byte{table, byte(prio >> 8), byte(prio)})
	for _, f := range m.Fields {
		h.Write([]byte{byte(f.ID.Class >> 8), byte(f.ID.Class), f.ID.Field, byte(len(f.Value))})
		h.Write(f.Value)
		h.Write(f.Mask)
	}
	return h.Sum32()
}

// Match and instruction shorthands.
func inPort(p uint32) ofp.OXM      { return ofp.FieldInPort.Uint(uint64(p)) }
func eth(t uint64) ofp.OXM         { return ofp.FieldEthType.Uint(t) }
func ipDst(p netip.Prefix) ofp.OXM { return ofp.FieldIPv4Dst.Prefix(p) }
func ipDstAddr(a netip.Addr) ofp.OXM {
	return ofp.FieldIPv4Dst.Addr(a)
}
func ctState(bits uint64) ofp.OXM {
	return ofp.FieldCtState.Masked(bits|ofp.CtStateTrk, bits|ofp.CtStateTrk)
}
func gotoTable(t uint8) ofp.Instruction { return &ofp.InstructionGotoTable{TableID: t} }
func apply(as ...ofp.Action) ofp.Instruction {
	return ofp.ApplyActions(as...)
}
func output(ports ...uint32) []ofp.Action {
	as := make([]ofp.Action, 0, len(ports))
	for _, p := range ports {
		as = append(as, &ofp.ActionOutput{Port: p})
	}
	return as
}
func setDst(mac net.HardwareAddr) ofp.Action {
	return &ofp.ActionSetField{Field: ofp.FieldEthDst.MAC(mac)}
}

// commit records a new connection so that its replies are +est.
func commit(nat ...ofp.Action) ofp.Action {
	return &ofp.NXActionCT{Flags: ofp.NXCTFlagCommit, ZoneOfsNbits: ctZone,
		RecircTable: ofp.NXCTRecircNone, Actions: nat}
}

// dnat commits a new connection with its destination rewritten to to.
func dnat(to netip.AddrPort) ofp.Action {
	return commit(&ofp.NXActionNAT{Flags: ofp.NXNATFlagDst, IPMin: to.Addr(), ProtoMin: to.Port()})
}

// meter prepends chute's meter instruction when it has one.
func meter(id uint32, rate BitRate, is ...ofp.Instruction) []ofp.Instruction {
	if rate == 0 {
		return is
	}
	return append([]ofp.Instruction{&ofp.InstructionMeter{MeterID: id}}, is...)
}

// l4 is the match on a protocol and, if port is not 0, its destination port.
func l4(proto Proto, port uint16) []ofp.OXM {
	m := []ofp.OXM{ofp.FieldIPProto.Uint(uint64(proto))}
	if port != 0 {
		f := ofp.FieldTCPDst
		if proto == UDP {
			f = ofp.FieldUDPDst
		}
		m = append(m, f.Uint(uint64(port)))
	}
	return m
}

func cat(parts ...[]ofp.OXM) []ofp.OXM { return slices.Concat(parts...) }

// derive computes every flow and meter of the bridge from the topology and
// the attached chutes (sorted by name for a stable order). It is pure, so
// the whole policy is unit-tested without a switch.
func derive(t topology, chutes []*attached) *derived {
	d := &derived{TX: map[uint64]bool{}, RX: map[uint64]bool{}, Hosts: map[uint64]string{}}
	baseFlows(builder{d, 0}, t)
	baseFlows6(builder{d, 0}, t)
	byName := map[string]*attached{}
	for _, c := range chutes {
		byName[c.Name] = c
	}
	for _, c := range chutes {
		chuteFlows(d, t, c, mutualPeers(c, byName))
	}
	return d
}

// mutualPeers are the attached chutes that c lists and that list c: both
// sides must agree before either can reach the other.
func mutualPeers(c *attached, byName map[string]*attached) []*attached {
	var ps []*attached
	for _, name := range c.Net.Peers {
		p, ok := byName[name]
		if ok && p != c && slices.Contains(p.Net.Peers, c.Name) {
			ps = append(ps, p)
		}
	}
	return ps
}

// others is ports without p.
func others(ports []uint32, p uint32) []uint32 {
	return slices.DeleteFunc(slices.Clone(ports), func(x uint32) bool { return x == p })
}

// baseFlows are the flows that do not depend on any chute: default drops,
// the gateway and the LAN as one segment chutes are not part of, and the
// connection tracker.
func baseFlows(b builder, t topology) {
	local := uint32(ofp.PortLocal)
	ip, arp := eth(ethIPv4), eth(ethARP)
	subnet := ipDst(t.Subnet)

	for _, table := range []uint8{tableClassify, tableCT, tablePolicy, tableOutput, tableARP} {
		b.add(table, 0, fmt.Sprintf("default deny (table %d)", table), nil)
	}
	lanFlows(b, t)

	// Ingress from the gateway and the LAN ports.
	b.add(tableClassify, 100, "gateway IPv4 to conntrack", []ofp.OXM{inPort(local), ip}, gotoTable(tableCT))
	b.add(tableClassify, 100, "gateway ARP", []ofp.OXM{inPort(local), arp}, gotoTable(tableARP))
	b.add(tableClassify, 90, "gateway's other traffic (IPv6...) to the LAN only",
		[]ofp.OXM{inPort(local)}, gotoTable(tableLAN))
	for _, p := range t.LANPorts {
		b.add(tableClassify, 100, "LAN IPv4 to conntrack", []ofp.OXM{inPort(p), ip}, gotoTable(tableCT))
		b.add(tableClassify, 90, "LAN's other traffic (IPv6...) to the gateway and the LAN only",
			[]ofp.OXM{inPort(p)}, apply(output(append(others(t.LANPorts, p), local)...)...))
	}

	b.add(tableCT, 10, "IPv4 through conntrack (existing NAT applied)", []ofp.OXM{ip},
		apply(&ofp.NXActionCT{ZoneOfsNbits: ctZone, RecircTable: tablePolicy,
			Actions: []ofp.Action{&ofp.NXActionNAT{}}}))

	// Policy for traffic from the gateway and the LAN. Traffic among
	// them is not the chutes' business, so it needs no conntrack state
	// (connections older than the switch's tracker keep working).
	for _, p := range append([]uint32{local}, t.LANPorts...) {
		from := "LAN"
		if p == local {
			from = "gateway"
		}
		b.add(tablePolicy, 300, "replies from the "+from+" to chutes",
			[]ofp.OXM{inPort(p), ip, subnet, ctState(ofp.CtStateEst)}, gotoTable(tableOutput))
		b.add(tablePolicy, 300, "related traffic (ICMP errors) from the "+from+" to chutes",
			[]ofp.OXM{inPort(p), ip, subnet, ctState(ofp.CtStateRel)}, gotoTable(tableOutput))
		if p != local {
			// A connection DNATed to a chute (exposed port, redirect) is
			// new to the tracker until the chute answers: a UDP flow's
			// later datagrams come here already translated (+new+dnat),
			// and no longer match the DNAT flow that let the first in.
			b.add(tablePolicy, 300, "later packets from the "+from+" of a connection DNATed to a chute, before its answer",
				[]ofp.OXM{inPort(p), ip, subnet, ctState(ofp.CtStateNew | ofp.CtStateDNAT)}, gotoTable(tableOutput))
		}
		b.add(tablePolicy, 290, "unsolicited "+from+" traffic to chutes dropped",
			[]ofp.OXM{inPort(p), ip, subnet})
		b.add(tablePolicy, 270, from+" traffic not for chutes",
			[]ofp.OXM{inPort(p), ip}, gotoTable(tableOutput))
	}
	// The daemon itself probes chutes (health checks, policy hooks).
	b.add(tablePolicy, 295, fmt.Sprintf("the gateway (%s) may connect to chutes", t.Gateway),
		[]ofp.OXM{inPort(local), ip, ofp.FieldIPv4Src.Addr(t.Gateway), subnet, ctState(ofp.CtStateNew)},
		apply(commit()), gotoTable(tableOutput))

	// Output by destination, once allowed.
	b.add(tableOutput, 250, "to unknown chute addresses dropped", []ofp.OXM{ip, subnet})
	gwAddrs := []netip.Addr{t.Gateway}
	if t.LANAddr.IsValid() {
		gwAddrs = append(gwAddrs, t.LANAddr.Addr())
	}
	for _, a := range gwAddrs {
		b.add(tableOutput, 260, "to the gateway's "+a.String(), []ofp.OXM{ip, ipDstAddr(a)},
			apply(setDst(t.GatewayMAC), &ofp.ActionOutput{Port: local}))
	}
	b.add(tableOutput, 100, "routed through the gateway (by MAC)",
		[]ofp.OXM{ip, ofp.FieldEthDst.MAC(t.GatewayMAC)}, apply(&ofp.ActionOutput{Port: local}))
	if t.LANAddr.IsValid() {
		b.add(tableOutput, 60, "to the LAN "+t.LANAddr.Masked().String(), []ofp.OXM{ip, ipDst(t.LANAddr.Masked())},
			gotoTable(tableLAN))
	}
	for _, p := range append([]uint32{local}, t.LANPorts...) {
		b.add(tableOutput, 50, "from the gateway or the LAN beyond the LAN subnet: by MAC on the LAN",
			[]ofp.OXM{inPort(p), ip}, gotoTable(tableLAN))
	}
	// Chutes cannot use a LAN host as their router by addressing it.
	b.add(tableOutput, 40, "chute traffic to anywhere else is routed by the gateway", []ofp.OXM{ip},
		apply(setDst(t.GatewayMAC), &ofp.ActionOutput{Port: local}))

	// ARP: the gateway and the LAN resolve each other freely, but only
	// per-chute flows (higher priority) let anyone resolve a chute.
	b.add(tableARP, 100, "gateway ARP for unknown chute addresses dropped",
		[]ofp.OXM{inPort(local), arp, ofp.FieldARPTPA.Prefix(t.Subnet)})
	b.add(tableARP, 50, "gateway ARP to the LAN", []ofp.OXM{inPort(local), arp}, gotoTable(tableLAN))
	for _, p := range t.LANPorts {
		b.add(tableARP, 100, "LAN may not resolve chutes",
			[]ofp.OXM{inPort(p), arp, ofp.FieldARPTPA.Prefix(t.Subnet)})
		b.add(tableARP, 50, "LAN ARP to the gateway and the LAN",
			[]ofp.OXM{inPort(p), arp}, apply(output(append(others(t.LANPorts, p), local)...)...))
	}
}

// lanTarget is one destination of a chute's lan rule, in flow terms.
type lanTarget struct {
	dst   ofp.OXM      // ip dst or eth dst
	arp   netip.Prefix // addresses the chute must resolve to reach it
	desc  string
	ports []uint16
}

// lanTargets turns the lan rules of one family into match terms (IPv6
// ones, see flows6.go, need the chutes' IPv6). A MAC rule, IPv4 only,
// needs the chute to resolve any LAN address, so it has nothing to reach
// on a gateway without a LAN.
func lanTargets(t topology, rules []LANRule, six bool) []lanTarget {
	var ts []lanTarget
	for _, r := range rules {
		var lt lanTarget
		switch {
		case r.Prefix.IsValid() && r.Prefix.Addr().Is6():
			if !six || !t.Subnet6.IsValid() {
				continue
			}
			p := r.Prefix.Masked()
			lt = lanTarget{dst: ip6Dst(p), arp: p, desc: prefixText(p)}
		case six:
			continue
		case r.Prefix.IsValid():
			p := r.Prefix.Masked()
			lt = lanTarget{dst: ipDst(p), arp: p, desc: prefixText(p)}
		case t.LANAddr.IsValid():
			lt = lanTarget{dst: ofp.FieldEthDst.MAC(r.MAC), arp: t.LANAddr.Masked(), desc: "MAC " + r.MAC.String()}
		default:
			continue
		}
		lt.ports = r.Ports
		ts = append(ts, lt)
	}
	return ts
}

// onLink lists the prefixes a chute must treat as on-link (resolve with
// ARP or neighbour discovery rather than send to its default gateway):
// the LAN, so that it can answer exposed and redirected connections
// directly, and the declared LAN destinations outside it, of either
// family. The switch delivers LAN traffic by MAC without routing it
// through the host.
func onLink(t topology, c Policy) []netip.Prefix {
	var ps []netip.Prefix
	if t.LANAddr.IsValid() {
		ps = append(ps, t.LANAddr.Masked())
	}
	for _, six := range []bool{false, true} {
		for _, lt := range lanTargets(t, c.LAN, six) {
			ps = append(ps, lt.arp)
		}
	}
	if answersLAN6(t, c) {
		ps = append(ps, t.LANAddr6.Masked())
	}
	return outermost(ps)
}

// outermost is ps (masked prefixes) without those inside another, in
// order: flows for both would be two entries of one priority matching the
// same packets.
func outermost(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range ps {
		inside := slices.ContainsFunc(ps, func(q netip.Prefix) bool {
			j := slices.Index(ps, q)
			return j != i && q.Contains(p.Addr()) && (q.Bits() < p.Bits() || q.Bits() == p.Bits() && j < i)
		})
		if !inside {
			out = append(out, p)
		}
	}
	return out
}

// chuteFlows are the flows of one chute: what it may send, what it may
// receive and what it may resolve, table by table.
func chuteFlows(d *derived, t topology, c *attached, peers []*attached) {
	id := c.id(t.Subnet)
	from := inPort(c.Port)
	cf := &chuteFlowSet{
		d: d, t: t, c: c, peers: peers, b: builder{d, id}, id: id, name: "chute " + c.Name, from: from,
		own:     []ofp.OXM{from, eth(ethIPv4), ofp.FieldEthSrc.MAC(c.MAC), ofp.FieldIPv4Src.Addr(c.IP)},
		targets: lanTargets(t, c.Net.LAN, false),
	}
	cf.classify()
	cf.policy()
	cf.output()
	cf.arp()
	cf.flows6()
	cf.meters()
}

// chuteFlowSet is one chute's flows under construction.
type chuteFlowSet struct {
	d       *derived
	t       topology
	c       *attached
	peers   []*attached // its mutual peers
	b       builder
	id      uint32
	name    string    // "chute NAME", for notes
	from    ofp.OXM   // its port
	own     []ofp.OXM // IPv4 from its port, its MAC and its address
	targets []lanTarget
}

// classify is table 0: only the chute's own addresses get in, and what it
// may start is decided here.
func (cf *chuteFlowSet) classify() {
	b, c, d, t, id, name, own := cf.b, cf.c, cf.d, cf.t, cf.id, cf.name, cf.own
	bw := c.Bandwidth
	d.TX[b.add(tableClassify, 200, name+" sends IPv4 (from its own MAC and IP)",
		own, meter(egressMeter(id), bw.Egress, gotoTable(tableCT))...)] = true
	b.add(tableClassify, 200, name+" sends ARP (as its own MAC and IP)",
		[]ofp.OXM{cf.from, eth(ethARP), ofp.FieldEthSrc.MAC(c.MAC), ofp.FieldARPSPA.Addr(c.IP), ofp.FieldARPSHA.MAC(c.MAC)},
		gotoTable(tableARP))
	b.add(tableClassify, 190, name+": spoofed or other traffic dropped", []ofp.OXM{cf.from})

	// What the chute may start is allowed whatever the connection's state,
	// so it is decided in table 0: the packet passes the tracker without
	// recirculating (ct(commit) keeps the connection's state for its
	// replies) and goes on to be delivered in the same datapath pass.
	// Only what the chute sends elsewhere pays the tracker's second pass
	// for a verdict.
	allow := func(note string, m ...ofp.OXM) {
		d.TX[b.add(tableClassify, 210, note, cat(own, m),
			meter(egressMeter(id), bw.Egress, apply(commit()), gotoTable(tableOutput))...)] = true
	}
	// Except its answers to DNATed connections (exposed ports, redirects).
	cf.dnatAnswers(cf.dnats(false), own, "")
	gw := ipDstAddr(t.Gateway)
	allow(name+" may ping the gateway "+t.Gateway.String(), ofp.FieldIPProto.Uint(protoICMP), gw)
	for _, proto := range []Proto{UDP, TCP} {
		allow(fmt.Sprintf("%s may use DNS at the gateway %s:53/%s", name, t.Gateway, proto),
			cat([]ofp.OXM{ofp.FieldIPProto.Uint(uint64(proto)), gw}, l4(proto, 53)[1:])...)
	}
	if t.APIPort != 0 {
		allow(fmt.Sprintf("%s may use the paradrop API at the gateway %s:%d/tcp", name, t.Gateway, t.APIPort),
			cat([]ofp.OXM{ofp.FieldIPProto.Uint(uint64(TCP)), gw}, l4(TCP, t.APIPort)[1:])...)
	}
	for _, lt := range cf.targets {
		if len(lt.ports) == 0 {
			allow(fmt.Sprintf("%s may reach LAN %s", name, lt.desc), lt.dst)
			continue
		}
		for _, port := range lt.ports {
			for _, proto := range []Proto{TCP, UDP} {
				allow(fmt.Sprintf("%s may reach LAN %s:%d/%s", name, lt.desc, port, proto),
					cat([]ofp.OXM{ofp.FieldIPProto.Uint(uint64(proto)), lt.dst}, l4(proto, port)[1:])...)
			}
		}
	}
	for _, p := range cf.peers {
		allow(fmt.Sprintf("%s may connect to its peer %s (%s)", name, p.Name, p.IP), ipDstAddr(p.IP))
	}
}

// policy is table 2: the chute's connections once tracked, what it may
// not start, the WAN, and what the LAN may start towards it (exposed
// ports and redirected addresses, DNATed to it).
func (cf *chuteFlowSet) policy() {
	b, c, t, name, from := cf.b, cf.c, cf.t, cf.name, cf.from
	ip := eth(ethIPv4)
	b.add(tablePolicy, 400, name+": invalid connection state dropped", []ofp.OXM{from, ip, ctState(ofp.CtStateInv)})
	b.add(tablePolicy, 300, name+": established connections",
		[]ofp.OXM{from, ip, ctState(ofp.CtStateEst)}, gotoTable(tableOutput))
	b.add(tablePolicy, 300, name+": related traffic (ICMP errors)",
		[]ofp.OXM{from, ip, ctState(ofp.CtStateRel)}, gotoTable(tableOutput))
	b.add(tablePolicy, 240, name+": other chutes denied", []ofp.OXM{from, ip, ipDst(t.Subnet)})
	if t.LANAddr.IsValid() {
		b.add(tablePolicy, 240, name+": undeclared LAN hosts denied", []ofp.OXM{from, ip, ipDst(t.LANAddr.Masked())})
	}
	if c.Net.WAN {
		// Straight to the gateway's kernel, whatever MAC the chute used:
		// WAN traffic can only leave through the host's routing and the
		// WAN-only forward guard.
		b.add(tablePolicy, 200, name+" may reach the WAN (routed and masqueraded by the gateway)",
			[]ofp.OXM{from, ip, ctState(ofp.CtStateNew)},
			apply(commit(), setDst(t.GatewayMAC), &ofp.ActionOutput{Port: uint32(ofp.PortLocal)}))
	}
	b.add(tablePolicy, 100, name+": default deny", []ofp.OXM{from, ip})
	cf.deliverDNAT(cf.dnats(false), c.IP)
}

// output is table 3: delivery to the chute, and to its LAN destinations
// beyond the LAN subnet.
func (cf *chuteFlowSet) output() {
	b, c, d, t, name := cf.b, cf.c, cf.d, cf.t, cf.name
	ip := eth(ethIPv4)
	for _, p := range onLink(t, c.Net) {
		if t.LANAddr.IsValid() && p == t.LANAddr.Masked() || p.Addr().Is6() {
			continue
		}
		b.add(tableOutput, 55, fmt.Sprintf("%s's LAN destination %s is on the LAN", name, p),
			[]ofp.OXM{cf.from, ip, ipDst(p)}, gotoTable(tableLAN))
	}
	d.RX[b.add(tableOutput, 300, "deliver to "+name+" at "+c.IP.String(), []ofp.OXM{ip, ipDstAddr(c.IP)},
		meter(ingressMeter(cf.id), c.Bandwidth.Ingress, apply(setDst(c.MAC), &ofp.ActionOutput{Port: c.Port}))...)] = true
}

// arp is table 4: whom the chute may resolve, and who may resolve it.
func (cf *chuteFlowSet) arp() {
	b, c, t, name := cf.b, cf.c, cf.t, cf.name
	local := uint32(ofp.PortLocal)
	arp := eth(ethARP)
	arpFrom := func(note string, tpa netip.Prefix, ports ...uint32) {
		b.add(tableARP, 200, note, []ofp.OXM{cf.from, arp, ofp.FieldARPTPA.Prefix(tpa)}, apply(output(ports...)...))
	}
	arpFrom(name+" resolves the gateway", netip.PrefixFrom(t.Gateway, 32), local)
	for _, p := range cf.peers {
		arpFrom(name+" resolves its peer "+p.Name, netip.PrefixFrom(p.IP, 32), p.Port)
	}
	// A chute answering LAN users (expose, redirect) must resolve them.
	var resolve []netip.Prefix
	if (len(c.Net.Expose) > 0 || len(c.Net.Redirect) > 0) && t.LANAddr.IsValid() {
		resolve = append(resolve, t.LANAddr.Masked())
	}
	for _, lt := range cf.targets {
		resolve = append(resolve, lt.arp)
	}
	slices.SortFunc(resolve, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	for _, p := range outermost(resolve) {
		arpFrom(name+" resolves LAN "+p.String(), p, t.LANPorts...)
	}
	b.add(tableARP, 150, name+": ARP for undeclared hosts dropped", []ofp.OXM{cf.from, arp})
	tpa := ofp.FieldARPTPA.Addr(c.IP)
	b.add(tableARP, 200, "the gateway resolves "+name, []ofp.OXM{inPort(local), arp, tpa}, apply(&ofp.ActionOutput{Port: c.Port}))
	if len(resolve) > 0 {
		for _, p := range t.LANPorts {
			b.add(tableARP, 200, "LAN hosts answer "+name+"'s ARP",
				[]ofp.OXM{inPort(p), arp, ofp.FieldARPOp.Uint(arpReply), tpa}, apply(&ofp.ActionOutput{Port: c.Port}))
		}
	}
}

// meters are the chute's two meters, for the rates it has.
func (cf *chuteFlowSet) meters() {
	bw := cf.c.Bandwidth
	for _, m := range []struct {
		id   uint32
		rate BitRate
	}{{egressMeter(cf.id), bw.Egress}, {ingressMeter(cf.id), bw.Ingress}} {
		if m.rate > 0 {
			kbps := uint32(max(1, (uint64(m.rate)+999)/1000))
			// A burst of 1/4 s: TCP against a policer with a smaller bucket
			// (1/10 s measured here) gets about half the rate; a larger one
			// lets a short transfer exceed the rate noticeably.
			cf.d.Meters = append(cf.d.Meters, controller.Meter{ID: m.id, RateKbps: kbps, BurstKb: max(kbps/4, 16)})
		}
	}
}
