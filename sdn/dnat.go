package sdn

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"paradrop/sdn/ofp"
)

// LAN users' ways into a chute, over IPv4 and IPv6 alike: its exposed
// ports, at the gateway's LAN address of the family, and its redirects,
// at the addresses they name. A LAN user's new connection to one is
// DNATed to the chute in table 2 and committed; the tracker then
// translates the connection's later packets, and undoes the DNAT on the
// chute's answers, which pass it from table 0 (see classify). Over IPv6
// only what a chute declares passes the tracker from the LAN (all LAN
// IPv4 does), and a chute answering LAN users resolves the hosts of the
// gateway's IPv6 LAN prefix, which is on-link for it as the IPv4 LAN is.

// wayIn is one way in: LAN users' connections to At over Proto are the
// chute's Port.
type wayIn struct {
	At    netip.AddrPort
	Proto Proto
	Port  uint16
	note  string
}

// dnats are the chute's ways in of one family: its exposed ports if the
// gateway has a LAN address of that family, and its redirects of it
// (IPv6 ones only with the chutes' IPv6 and an IPv6 LAN address, which
// Network.check insists on: the chute must resolve the users it answers).
func (cf *chuteFlowSet) dnats(six bool) []wayIn {
	t := cf.t
	lan := t.LANAddr
	if six {
		if !t.Subnet6.IsValid() || !t.LANAddr6.IsValid() {
			return nil
		}
		lan = t.LANAddr6
	}
	var ds []wayIn
	if lan.IsValid() {
		for _, e := range cf.c.Net.Expose {
			at := netip.AddrPortFrom(lan.Addr(), e.GatewayPort)
			ds = append(ds, wayIn{at, e.Proto, e.Port, fmt.Sprintf("LAN users reach %s port %d/%s at %s", cf.name, e.Port, e.Proto, at)})
		}
	}
	for _, r := range cf.c.Net.Redirect {
		if r.To.Addr().Is6() == six {
			ds = append(ds, wayIn{r.To, r.Proto, r.Port, fmt.Sprintf("LAN requests to %s/%s answered by %s port %d", r.To, r.Proto, cf.name, r.Port)})
		}
	}
	return ds
}

// answersLAN6 says whether the chute answers LAN users over IPv6.
func answersLAN6(t topology, p Policy) bool {
	return t.Subnet6.IsValid() && t.LANAddr6.IsValid() &&
		(len(p.Expose) > 0 || slices.ContainsFunc(p.Redirect, func(r Redirect) bool { return r.To.Addr().Is6() }))
}

// ipEth and ipDstOf are the match on a's family and on a as destination.
func ipEth(a netip.Addr) ofp.OXM {
	if a.Is6() {
		return eth(ethIPv6)
	}
	return eth(ethIPv4)
}

func ipDstOf(a netip.Addr) ofp.OXM {
	if a.Is6() {
		return ip6DstAddr(a)
	}
	return ipDstAddr(a)
}

// match is the match on a LAN user's packets of the way in (its
// protocol, address and port).
func (dn wayIn) match() []ofp.OXM {
	l := l4(dn.Proto, dn.At.Port())
	return cat(l[:1], []ofp.OXM{ipDstOf(dn.At.Addr())}, l[1:])
}

// deliverDNAT is table 2's DNAT of the new connections of each way in to
// me, the chute's address of the family. The output is in the same flow
// because a ct(commit,nat) without recirculation leaves the pipeline
// matching on the pre-NAT headers.
func (cf *chuteFlowSet) deliverDNAT(ds []wayIn, me netip.Addr) {
	c := cf.c
	for _, dn := range ds {
		for _, p := range cf.t.LANPorts {
			cf.d.RX[cf.b.add(tablePolicy, 280, dn.note, cat([]ofp.OXM{inPort(p), ipEth(me)}, dn.match(), []ofp.OXM{ctState(ofp.CtStateNew)}),
				meter(ingressMeter(cf.id), c.Bandwidth.Ingress,
					apply(dnat(netip.AddrPortFrom(me, dn.Port)), setDst(c.MAC), &ofp.ActionOutput{Port: c.Port}))...)] = true
		}
	}
}

// dnatAnswers is table 0's pass through the tracker of the chute's
// answers from the ports of its ways in, own being the match on what it
// sends of the family, even to hosts it may reach: only the tracker's
// pass with nat undoes the DNAT, and ct(commit) cannot take nat in what
// it may start (OVS's userspace tracker then leaves the connection's
// replies untracked).
func (cf *chuteFlowSet) dnatAnswers(ds []wayIn, own []ofp.OXM, family string) {
	answered := map[string]bool{}
	for _, dn := range ds {
		key := fmt.Sprint(dn.Proto, dn.Port)
		if answered[key] {
			continue
		}
		answered[key] = true
		f := ofp.FieldTCPSrc
		if dn.Proto == UDP {
			f = ofp.FieldUDPSrc
		}
		cf.d.TX[cf.b.add(tableClassify, 220, fmt.Sprintf("%s's %sanswers from its port %d/%s pass the tracker (DNAT undone)", cf.name, family, dn.Port, dn.Proto),
			cat(own, []ofp.OXM{ofp.FieldIPProto.Uint(uint64(dn.Proto)), f.Uint(uint64(dn.Port))}),
			meter(egressMeter(cf.id), cf.c.Bandwidth.Egress, gotoTable(tableCT))...)] = true
	}
}

// dnatTracked6 is table 0's pass through the tracker of LAN users'
// packets to the chute's IPv6 ways in: over IPv6 the LAN's traffic
// passes the tracker only where a chute may be behind it.
func (cf *chuteFlowSet) dnatTracked6(ds []wayIn) {
	for _, dn := range ds {
		for _, p := range cf.t.LANPorts {
			cf.b.add(tableClassify, 105, fmt.Sprintf("LAN IPv6 to %s/%s to conntrack (%s's)", dn.At, dn.Proto, cf.name),
				cat([]ofp.OXM{inPort(p), eth(ethIPv6)}, dn.match()), gotoTable(tableCT))
		}
	}
}

// baseDNAT6 are table 2's IPv6 flows for LAN users' connections through
// a chute's ways in, whichever chute's.
func baseDNAT6(b builder, t topology) {
	if !t.LANAddr6.IsValid() {
		return
	}
	local := uint32(ofp.PortLocal)
	for _, p := range t.LANPorts {
		// As over IPv4: a UDP flow's later datagrams come here
		// translated (+new+dnat) until the chute answers.
		b.add(tablePolicy, 300, "later IPv6 packets from the LAN of a connection DNATed to a chute, before its answer",
			[]ofp.OXM{inPort(p), eth(ethIPv6), ip6Dst(t.Subnet6), ctState(ofp.CtStateNew | ofp.CtStateDNAT)}, gotoTable(tableOutput))
		// What a way in did not take (another state, a connection the
		// gateway had before the chute) goes where LAN IPv6 that is
		// not for chutes goes.
		b.add(tablePolicy, 270, "LAN IPv6 not DNATed to a chute: to the gateway and the LAN, as the rest",
			[]ofp.OXM{inPort(p), eth(ethIPv6)}, apply(output(append(others(t.LANPorts, p), local)...)...))
	}
}

// checkLANAddr6 refuses an IPv6 LAN address that is not a global or
// unique local address with its prefix, or whose prefix overlaps one of
// the chutes' /64s (the ULA one, and the global one of a delegated
// prefix): LAN users would be on-link for a chute's own addresses.
func checkLANAddr6(a netip.Prefix, chutes ...netip.Prefix) error {
	if !a.IsValid() {
		return nil
	}
	if !a.Addr().Is6() || a.Addr().Is4In6() || !a.Addr().IsGlobalUnicast() || a.Bits() == 128 {
		return fmt.Errorf("LAN IPv6 address %s is not a global or unique local IPv6 address with its prefix", a)
	}
	for _, p := range chutes {
		if a.Overlaps(p) {
			return fmt.Errorf("LAN IPv6 address %s overlaps the chutes' %s", a, p)
		}
	}
	return nil
}

// checkDNAT6 refuses IPv6 redirects that the flows for this topology
// could not give: without an IPv6 LAN address the chute could not
// resolve the users it answers, and an address of the chutes' own (in
// their ULA or global /64) or the gateway's LAN address is no redirect.
func (t topology) checkDNAT6(p Policy) error {
	var errs []error
	for i, r := range p.Redirect {
		a := r.To.Addr()
		if !a.Is6() {
			continue
		}
		f := fmt.Sprintf("net.redirect[%d].to", i)
		switch {
		case !t.Subnet6.IsValid() || !t.LANAddr6.IsValid():
			errs = append(errs, fmt.Errorf("%w: %s: %s is IPv6 and this gateway has no IPv6 LAN address (serve --lan-addr6)", ErrUnenforceable, f, r.To))
		case t.Subnet6.Contains(a) || t.Global6.Contains(a) || a == t.LANAddr6.Addr():
			errs = append(errs, fmt.Errorf("%w: %s: %s is the gateway's or the chutes' own", ErrUnenforceable, f, r.To))
		}
	}
	return errors.Join(errs...)
}
