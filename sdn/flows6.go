package sdn

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"paradrop/sdn/ofp"
)

// IPv6 for chutes: each chute has an address in the ULA /64 Subnet6, at
// the same host index as its IPv4 address, and the gateway has ::1 there.
// The flows are IPv4's, family for family: the same tables, the same
// conntrack zone, the same verdicts. Neighbour discovery takes ARP's
// place in table 4: a solicitation goes only to the owner of its target
// (never flooded to other chutes), an advertisement only to the MAC it
// is sent to, and a chute may advertise nothing but its own address and
// MAC. Declared IPv6 LAN hosts are on-link for the chute, as IPv4 ones:
// it resolves them on the LAN, and they may probe it (unicast
// solicitations, to keep their neighbour entry) and answer its
// connections. With a delegated prefix, chutes have a global address too
// and those with wan reach the WAN from it (see wan6.go). LAN users reach
// exposed ports and redirects over IPv6 with an IPv6 LAN address (see
// dnat.go), DNATed to the chute's ULA. The chutes' API is at the
// gateway's ULA too.

const ethIPv6 = 0x86dd

// ICMPv6.
const (
	protoICMPv6   = 58
	icmp6Echo     = 128
	ndSolicit     = 135
	ndAdvertise   = 136
	ndNoLinkLayer = "00:00:00:00:00:00"
)

// ULAFor derives a stable unique local /64 (RFC 4193: fd00::/8 and a
// 40-bit global id) from seed, such as the bridge's datapath id and the
// chute subnet: the same gateway keeps its chutes' IPv6 addresses across
// restarts without storing them.
func ULAFor(seed string) netip.Prefix {
	h := sha256.Sum256([]byte("paradrop ULA " + seed))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], h[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// machineID is /etc/machine-id, or "" where there is none: what makes
// one gateway's derived ULA unlike another's with the same settings.
func machineID() string {
	b, _ := os.ReadFile("/etc/machine-id")
	return strings.TrimSpace(string(b))
}

// AddressFor6 is the IPv6 address in subnet6 of the chute whose IPv4
// address is ip in subnet: the same host index. The zero Addr without
// subnet6.
func AddressFor6(subnet, subnet6 netip.Prefix, ip netip.Addr) netip.Addr {
	if !subnet6.IsValid() || !ip.Is4() {
		return netip.Addr{}
	}
	a := subnet6.Masked().Addr().As16()
	id := hostIndex(subnet, ip)
	a[12], a[13], a[14], a[15] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	return netip.AddrFrom16(a)
}

// gateway6 is the gateway's address in subnet6: ::1.
func gateway6(subnet6 netip.Prefix) netip.Addr {
	if !subnet6.IsValid() {
		return netip.Addr{}
	}
	return subnet6.Masked().Addr().Next()
}

func ip6Dst(p netip.Prefix) ofp.OXM   { return ofp.FieldIPv6Dst.Prefix(p) }
func ip6DstAddr(a netip.Addr) ofp.OXM { return ofp.FieldIPv6Dst.Addr(a) }
func icmp6(typ uint64) []ofp.OXM {
	return []ofp.OXM{ofp.FieldIPProto.Uint(protoICMPv6), ofp.FieldICMPv6Type.Uint(typ)}
}
func ndTarget(a netip.Addr) ofp.OXM { return ofp.FieldIPv6NDTarget.Addr(a) }
func ndLLField(f ofp.FieldID, mac string) ofp.OXM {
	hw, _ := net.ParseMAC(mac)
	return f.MAC(hw)
}

// baseFlows6 are the IPv6 flows that do not depend on any chute, beside
// baseFlows (which keeps the gateway's and the LAN's other IPv6 off the
// chutes' ports).
func baseFlows6(b builder, t topology) {
	if !t.Subnet6.IsValid() {
		return
	}
	local := uint32(ofp.PortLocal)
	ip6, subnet := eth(ethIPv6), ip6Dst(t.Subnet6)
	gw := t.Gateway6
	prefixes := chutePrefixes6(t)

	for _, typ := range []uint64{ndSolicit, ndAdvertise} {
		b.add(tableClassify, 110, fmt.Sprintf("gateway neighbour discovery (ICMPv6 %d) to the resolution table", typ),
			cat([]ofp.OXM{inPort(local), ip6}, icmp6(typ)), gotoTable(tableARP))
	}
	for _, p := range prefixes {
		b.add(tableClassify, 100, "gateway IPv6 to chutes to conntrack", []ofp.OXM{inPort(local), ip6, ip6Dst(p)}, gotoTable(tableCT))
	}
	baseDNAT6(b, t)
	b.add(tableCT, 10, "IPv6 through conntrack", []ofp.OXM{ip6},
		apply(&ofp.NXActionCT{ZoneOfsNbits: ctZone, RecircTable: tablePolicy,
			Actions: []ofp.Action{&ofp.NXActionNAT{}}}))

	// The gateway and the LAN reach the chutes' IPv6 subnet only with
	// replies; the gateway may connect to them.
	from := []ofp.OXM{inPort(local), ip6, subnet}
	b.add(tablePolicy, 295, fmt.Sprintf("the gateway (%s) may connect to chutes", gw),
		append(from, ofp.FieldIPv6Src.Addr(gw), ctState(ofp.CtStateNew)), apply(commit()), gotoTable(tableOutput))
	for _, p := range append([]uint32{local}, t.LANPorts...) {
		who := "LAN"
		if p == local {
			who = "gateway"
		}
		for _, dst := range prefixes {
			from := []ofp.OXM{inPort(p), ip6, ip6Dst(dst)}
			b.add(tablePolicy, 300, "IPv6 replies from the "+who+" to chutes", append(from, ctState(ofp.CtStateEst)), gotoTable(tableOutput))
			b.add(tablePolicy, 300, "related IPv6 traffic (ICMPv6 errors) from the "+who+" to chutes", append(from, ctState(ofp.CtStateRel)), gotoTable(tableOutput))
			b.add(tablePolicy, 290, "unsolicited "+who+" IPv6 to chutes dropped", from)
		}
	}
	for _, p := range t.LANPorts {
		for _, typ := range []uint64{ndSolicit, ndAdvertise} {
			b.add(tableClassify, 110, fmt.Sprintf("LAN neighbour discovery (ICMPv6 %d) to the resolution table", typ),
				cat([]ofp.OXM{inPort(p), ip6}, icmp6(typ)), gotoTable(tableARP))
		}
		for _, dst := range prefixes {
			b.add(tableClassify, 100, "LAN IPv6 to chutes to conntrack", []ofp.OXM{inPort(p), ip6, ip6Dst(dst)}, gotoTable(tableCT))
		}
		b.add(tableARP, 50, "LAN neighbour discovery to the gateway and the LAN", []ofp.OXM{inPort(p), ip6},
			apply(output(append(others(t.LANPorts, p), local)...)...))
	}

	for _, p := range prefixes {
		b.add(tableOutput, 250, "to unknown chute IPv6 addresses dropped", []ofp.OXM{ip6, ip6Dst(p)})
	}
	b.add(tableOutput, 260, "to the gateway's "+gw.String(), []ofp.OXM{ip6, ip6DstAddr(gw)},
		apply(setDst(t.GatewayMAC), &ofp.ActionOutput{Port: local}))

	// The gateway resolves chutes only through their own flows.
	for _, p := range prefixes {
		b.add(tableARP, 100, "gateway neighbour solicitations for unknown chute addresses dropped",
			cat([]ofp.OXM{inPort(local), ip6}, icmp6(ndSolicit), []ofp.OXM{ofp.FieldIPv6NDTarget.Prefix(p)}))
	}
	b.add(tableARP, 50, "gateway neighbour discovery to the LAN", []ofp.OXM{inPort(local), ip6},
		gotoTable(tableLAN))
	baseFlowsWAN6(b, t)
}

// flows6 are one chute's IPv6 flows, table by table, beside the IPv4
// ones of chuteFlowSet.
func (cf *chuteFlowSet) flows6() {
	t := cf.t
	if !t.Subnet6.IsValid() {
		return
	}
	b, c, d, id, name, from := cf.b, cf.c, cf.d, cf.id, cf.name, cf.from
	ip6 := eth(ethIPv6)
	me := AddressFor6(t.Subnet, t.Subnet6, c.IP)
	global := AddressFor6(t.Subnet, t.Global6, c.IP) // invalid without a delegated prefix
	bw := c.Bandwidth
	local := uint32(ofp.PortLocal)
	// Its own addresses: what it may start, it may start from either
	// (it picks its global one for global destinations).
	type source struct {
		addr netip.Addr
		note string
	}
	sources := []source{{me, ""}}
	if global.IsValid() {
		sources = append(sources, source{global, " (from its global address)"})
	}
	own := func(src netip.Addr) []ofp.OXM {
		return []ofp.OXM{from, ip6, ofp.FieldEthSrc.MAC(c.MAC), ofp.FieldIPv6Src.Addr(src)}
	}

	// Table 0.
	d.TX[b.add(tableClassify, 200, name+" sends IPv6 (from its own MAC and IP)",
		own(me), meter(egressMeter(id), bw.Egress, gotoTable(tableCT))...)] = true
	if global.IsValid() {
		d.TX[b.add(tableClassify, 200, name+" sends IPv6 from its global address "+global.String(),
			own(global), meter(egressMeter(id), bw.Egress, gotoTable(tableCT))...)] = true
	}
	// Solicitations from any source address (a retransmission comes from
	// the link-local one), but only with its own MAC as the answer's
	// destination; advertisements of its own address only. Above what it
	// may start (210): that a peer may be reached does not let a chute
	// advertise the peer's address to it.
	ndFrom := cat([]ofp.OXM{from, ip6, ofp.FieldEthSrc.MAC(c.MAC)})
	for _, ll := range []string{c.MAC.String(), ndNoLinkLayer} {
		b.add(tableClassify, 216, name+" solicits neighbours (as its own MAC)",
			cat(ndFrom, icmp6(ndSolicit), []ofp.OXM{ndLLField(ofp.FieldIPv6NDSLL, ll)}), gotoTable(tableARP))
		for _, src := range sources {
			b.add(tableClassify, 216, name+" advertises its own address "+src.addr.String(),
				cat(ndFrom, icmp6(ndAdvertise), []ofp.OXM{ndTarget(src.addr), ndLLField(ofp.FieldIPv6NDTLL, ll)}), gotoTable(tableARP))
		}
	}
	for _, typ := range []uint64{ndSolicit, ndAdvertise} {
		b.add(tableClassify, 215, fmt.Sprintf("%s: spoofed neighbour discovery (ICMPv6 %d) dropped", name, typ),
			cat([]ofp.OXM{from, ip6}, icmp6(typ)))
	}
	allow := func(note string, m ...ofp.OXM) {
		for _, src := range sources {
			d.TX[b.add(tableClassify, 210, note+src.note, cat(own(src.addr), m),
				meter(egressMeter(id), bw.Egress, apply(commit()), gotoTable(tableOutput))...)] = true
		}
	}
	gw := ip6DstAddr(t.Gateway6)
	allow(name+" may ping the gateway "+t.Gateway6.String(), cat(icmp6(icmp6Echo), []ofp.OXM{gw})...)
	for _, proto := range []Proto{UDP, TCP} {
		allow(fmt.Sprintf("%s may use DNS at the gateway [%s]:53/%s", name, t.Gateway6, proto),
			cat([]ofp.OXM{ofp.FieldIPProto.Uint(uint64(proto)), gw}, l4(proto, 53)[1:])...)
	}
	if t.APIPort != 0 {
		allow(fmt.Sprintf("%s may use the paradrop API at the gateway [%s]:%d/tcp", name, t.Gateway6, t.APIPort),
			cat([]ofp.OXM{ofp.FieldIPProto.Uint(uint64(TCP)), gw}, l4(TCP, t.APIPort)[1:])...)
	}
	for _, p := range cf.peers {
		pa := AddressFor6(t.Subnet, t.Subnet6, p.IP)
		allow(fmt.Sprintf("%s may connect to its peer %s (%s)", name, p.Name, pa), ip6DstAddr(pa))
	}
	ds := cf.dnats(true)
	// Its answers from its ULA, where ways in are DNATed to.
	cf.dnatAnswers(ds, own(me), "IPv6 ")
	cf.dnatTracked6(ds)
	targets := lanTargets(t, c.Net.LAN, true)
	for _, lt := range targets {
		if len(lt.ports) == 0 {
			allow(fmt.Sprintf("%s may reach LAN %s", name, lt.desc), lt.dst)
			continue
		}
		for _, port := range lt.ports {
			for _, proto := range []Proto{TCP, UDP} {
				allow(fmt.Sprintf("%s may reach LAN [%s]:%d/%s", name, lt.desc, port, proto),
					cat([]ofp.OXM{ofp.FieldIPProto.Uint(uint64(proto)), lt.dst}, l4(proto, port)[1:])...)
			}
		}
	}

	// Table 2: its connections once tracked; nothing else.
	b.add(tablePolicy, 400, name+": invalid IPv6 connection state dropped", []ofp.OXM{from, ip6, ctState(ofp.CtStateInv)})
	b.add(tablePolicy, 300, name+": established IPv6 connections", []ofp.OXM{from, ip6, ctState(ofp.CtStateEst)}, gotoTable(tableOutput))
	b.add(tablePolicy, 300, name+": related IPv6 traffic (ICMPv6 errors)", []ofp.OXM{from, ip6, ctState(ofp.CtStateRel)}, gotoTable(tableOutput))
	cf.wan6(global)
	b.add(tablePolicy, 100, name+": IPv6 default deny", []ofp.OXM{from, ip6})
	cf.deliverDNAT(ds, me)

	// Table 3. One flow for prefixes inside one another. A chute
	// answering LAN users has their prefix on the LAN.
	var onLAN []netip.Prefix
	for _, lt := range targets {
		onLAN = append(onLAN, lt.arp)
	}
	if answersLAN6(t, c.Net) {
		onLAN = append(onLAN, t.LANAddr6.Masked())
	}
	onLAN = outermost(onLAN)
	for _, p := range onLAN {
		b.add(tableOutput, 55, fmt.Sprintf("%s's LAN destination %s is on the LAN", name, p),
			[]ofp.OXM{from, ip6, ip6Dst(p)}, gotoTable(tableLAN))
	}
	for _, src := range sources {
		d.RX[b.add(tableOutput, 300, "deliver to "+name+" at "+src.addr.String(), []ofp.OXM{ip6, ip6DstAddr(src.addr)},
			meter(ingressMeter(id), bw.Ingress, apply(setDst(c.MAC), &ofp.ActionOutput{Port: c.Port}))...)] = true
	}

	// Table 4: it resolves the gateway and its peers; the gateway and its
	// peers resolve it, and their advertisements reach it by its MAC.
	solicit := func(note string, target netip.Addr, port uint32) {
		b.add(tableARP, 200, note, cat([]ofp.OXM{from, ip6}, icmp6(ndSolicit), []ofp.OXM{ndTarget(target)}),
			apply(&ofp.ActionOutput{Port: port}))
	}
	// Its answers to the gateway and its peers, by their MAC, come before
	// those to the LAN by address (205): the gateway may solicit from its
	// IPv6 LAN address, and either from a link-local one.
	advertise := func(note string, to net.HardwareAddr, port uint32) {
		b.add(tableARP, 205, note, cat([]ofp.OXM{from, ip6, ofp.FieldEthDst.MAC(to)}, icmp6(ndAdvertise)),
			apply(&ofp.ActionOutput{Port: port}))
	}
	solicit(name+" resolves the gateway "+t.Gateway6.String(), t.Gateway6, local)
	advertise(name+" answers the gateway's solicitations", t.GatewayMAC, local)
	for _, p := range cf.peers {
		solicit(name+" resolves its peer "+p.Name+" over IPv6", AddressFor6(t.Subnet, t.Subnet6, p.IP), p.Port)
		advertise(name+" answers its peer "+p.Name+"'s solicitations", p.MAC, p.Port)
	}
	for _, p := range onLAN {
		b.add(tableARP, 200, name+" resolves LAN "+prefixText(p),
			cat([]ofp.OXM{from, ip6}, icmp6(ndSolicit), []ofp.OXM{ofp.FieldIPv6NDTarget.Prefix(p)}), gotoTable(tableLAN))
		b.add(tableARP, 200, name+" answers LAN "+prefixText(p)+"'s solicitations",
			cat([]ofp.OXM{from, ip6}, icmp6(ndAdvertise), []ofp.OXM{ip6Dst(p)}), gotoTable(tableLAN))
	}
	if len(onLAN) > 0 {
		// A host's neighbour probes may come from its link-local address.
		b.add(tableARP, 200, name+" answers LAN hosts' link-local solicitations",
			cat([]ofp.OXM{from, ip6}, icmp6(ndAdvertise), []ofp.OXM{ip6Dst(netip.MustParsePrefix("fe80::/10"))}), gotoTable(tableLAN))
		for _, p := range t.LANPorts {
			b.add(tableARP, 200, "LAN hosts answer "+name+"'s solicitations",
				cat([]ofp.OXM{inPort(p), ip6, ofp.FieldEthDst.MAC(c.MAC)}, icmp6(ndAdvertise)), apply(&ofp.ActionOutput{Port: c.Port}))
			for _, src := range sources {
				b.add(tableARP, 200, "LAN hosts probe "+name+" (unicast solicitations)"+src.note,
					cat([]ofp.OXM{inPort(p), ip6, ofp.FieldEthDst.MAC(c.MAC)}, icmp6(ndSolicit), []ofp.OXM{ndTarget(src.addr)}),
					apply(&ofp.ActionOutput{Port: c.Port}))
			}
		}
	}
	b.add(tableARP, 150, name+": neighbour discovery for undeclared hosts dropped", []ofp.OXM{from, ip6})
	for _, src := range sources {
		b.add(tableARP, 200, "the gateway resolves "+name+" over IPv6"+src.note,
			cat([]ofp.OXM{inPort(local), ip6}, icmp6(ndSolicit), []ofp.OXM{ndTarget(src.addr)}), apply(&ofp.ActionOutput{Port: c.Port}))
	}
	b.add(tableARP, 200, "the gateway answers "+name+"'s solicitations",
		cat([]ofp.OXM{inPort(local), ip6, ofp.FieldEthDst.MAC(c.MAC)}, icmp6(ndAdvertise)), apply(&ofp.ActionOutput{Port: c.Port}))
}
