package sdn

import (
	"fmt"
	"net/netip"

	"paradrop/sdn/ofp"
)

// Global IPv6: with a prefix delegated to the gateway (Config.Prefix6),
// the chutes get a second IPv6 /64, its first, where each chute has a
// global address at its host index beside its ULA, and the gateway ::1.
// A chute with wan reaches the WAN from its global address, routed by the
// gateway with no NAT: its new connections are committed to the tracker
// in table 2 as over IPv4, and only their replies come back (the base
// flows treat the global /64 as the ULA one: nothing unsolicited from the
// gateway or the LAN reaches a chute). The guard forwards out of the WAN
// interface from the global /64 alone, never from the ULA.

// globalSubnet6 is the chutes' /64 of the delegated prefix p: its first;
// invalid without p.
func globalSubnet6(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(p.Masked().Addr(), 64)
}

// checkPrefix6 refuses a delegated prefix that cannot hold the chutes'
// global /64 or is not a global unicast one outside Subnet6.
func checkPrefix6(p, subnet6 netip.Prefix) error {
	switch {
	case !p.IsValid():
		return nil
	case !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() > 64:
		return fmt.Errorf("delegated IPv6 prefix %s is not an IPv6 prefix of at most /64", p)
	case !p.Addr().IsGlobalUnicast() || p.Addr().IsPrivate():
		return fmt.Errorf("delegated IPv6 prefix %s is not global unicast", p)
	case p.Overlaps(subnet6):
		return fmt.Errorf("delegated IPv6 prefix %s overlaps the chutes' %s", p, subnet6)
	}
	return nil
}

// Global6 is the chutes' global IPv6 /64, from the delegated prefix;
// invalid without one.
func (n *Network) Global6() netip.Prefix { return n.global6 }

// AddressGlobal6 is the global IPv6 address of the chute whose IPv4
// address is ip; the zero Addr without a delegated prefix.
func (n *Network) AddressGlobal6(ip netip.Addr) netip.Addr {
	return AddressFor6(n.cfg.Subnet, n.global6, ip)
}

// chutePrefixes6 are the chutes' IPv6 /64s: the ULA one, and the global
// one if there is a delegated prefix.
func chutePrefixes6(t topology) []netip.Prefix {
	ps := []netip.Prefix{t.Subnet6}
	if t.Global6.IsValid() {
		ps = append(ps, t.Global6)
	}
	return ps
}

// wan6 is the chute's IPv6 to the WAN, in table 2: new connections from
// its global address, to anything but the chutes' /64s, go to the
// gateway's kernel to be routed (the guard lets them out of the WAN
// interface alone); their replies are established like any other.
func (cf *chuteFlowSet) wan6(global netip.Addr) {
	if !global.IsValid() || !cf.c.Net.WAN {
		return
	}
	b, t, name := cf.b, cf.t, cf.name
	from := []ofp.OXM{cf.from, eth(ethIPv6), ofp.FieldIPv6Src.Addr(global)}
	for _, p := range chutePrefixes6(t) {
		b.add(tablePolicy, 240, fmt.Sprintf("%s: other chutes denied from its global address (%s)", name, p), cat(from, []ofp.OXM{ip6Dst(p)}))
	}
	b.add(tablePolicy, 200, fmt.Sprintf("%s may reach the WAN over IPv6 from %s (routed by the gateway)", name, global),
		cat(from, []ofp.OXM{ctState(ofp.CtStateNew)}),
		apply(commit(), setDst(t.GatewayMAC), &ofp.ActionOutput{Port: uint32(ofp.PortLocal)}))
}

// baseFlowsWAN6 route what chutes send from their global addresses once
// allowed (their WAN connections' later packets, table 3) through the
// gateway, whatever MAC they used, as IPv4's beyond the LAN.
func baseFlowsWAN6(b builder, t topology) {
	if !t.Global6.IsValid() {
		return
	}
	b.add(tableOutput, 40, "chute IPv6 from global addresses to anywhere else is routed by the gateway",
		[]ofp.OXM{eth(ethIPv6), ofp.FieldIPv6Src.Prefix(t.Global6)},
		apply(setDst(t.GatewayMAC), &ofp.ActionOutput{Port: uint32(ofp.PortLocal)}))
}
