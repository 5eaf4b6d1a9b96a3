package sdn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"paradrop/netconf"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ofsim"
)

// policyDeck deals random valid policies out of fuzz bytes.
type policyDeck struct{ b []byte }

func (d *policyDeck) next() byte {
	if len(d.b) == 0 {
		return 0
	}
	x := d.b[0]
	d.b = d.b[1:]
	return x
}

func (d *policyDeck) bit() bool { return d.next()&1 == 1 }

// chutes deals 2 to 5 chutes with random wan, peers, LAN rules (host,
// prefix, MAC; with or without ports), exposed ports and redirects, all
// valid and free of clashes (as Network.check insists).
func (d *policyDeck) chutes(topo topology, lanMACs [][]byte) []*attached {
	names := []string{"a", "b", "c", "d", "e"}[:2+int(d.next())%4]
	lanRules := []LANRule{
		{Prefix: netip.PrefixFrom(lan1Addr, 32)},
		{Prefix: netip.PrefixFrom(lan2Addr, 32), Ports: []uint16{554}},
		{Prefix: netip.MustParsePrefix("198.51.100.20/31"), Ports: []uint16{22, 554}},
		{Prefix: netip.MustParsePrefix("192.0.2.0/28")},
		{MAC: lanMACs[1]},
		{MAC: lanMACs[0], Ports: []uint16{80}},
		{Prefix: netip.PrefixFrom(lanV6[0], 128)},
		{Prefix: netip.MustParsePrefix("2001:db8:1::20/127"), Ports: []uint16{554}},
	}
	var out []*attached
	exposed := map[uint16]bool{}
	redirected := map[netip.AddrPort]bool{}
	for i, name := range names {
		var p Policy
		p.WAN = d.bit()
		for _, other := range names {
			if other != name && d.bit() {
				p.Peers = append(p.Peers, other)
			}
		}
		for _, r := range lanRules {
			if d.next()%3 == 0 {
				p.LAN = append(p.LAN, r)
			}
		}
		if gp := 8000 + uint16(d.next()%4); d.bit() && !exposed[gp] {
			exposed[gp] = true
			p.Expose = append(p.Expose, Expose{Port: 80, GatewayPort: gp, Proto: TCP})
		}
		if to := netip.AddrPortFrom(cloudIP, 80+uint16(d.next()%2)); d.bit() && !redirected[to] {
			redirected[to] = true
			p.Redirect = append(p.Redirect, Redirect{To: to, Port: 8081, Proto: TCP})
		}
		if to := netip.AddrPortFrom(cloud6, 80+uint16(d.next()%2)); d.bit() && !redirected[to] {
			redirected[to] = true
			p.Redirect = append(p.Redirect, Redirect{To: to, Port: 8084, Proto: TCP})
		}
		out = append(out, &attached{Chute: Chute{Name: name, MAC: netconf.MACFor(name), IP: AddressFor(topo.Subnet, i), Net: p},
			Port: uint32(10 + i)})
	}
	return out
}

func mutual(a, b *attached) bool {
	return slices.Contains(a.Net.Peers, b.Name) && slices.Contains(b.Net.Peers, a.Name)
}

// FuzzPolicyInvariants derives the flows of random valid policies and
// checks in the simulator what must hold whatever the policies say: the
// switch accepts every flow and no lookup is ambiguous; no chute reaches
// another without mutual peers; nothing from a chute leaves to the WAN
// without wan; nothing reaches a chute as an answer unless it answers a
// tracked connection; LAN users reach a chute only through the ways in
// it declares (exposed gateway ports, redirected addresses). Over IPv4
// and IPv6 alike, on a gateway with a delegated IPv6 prefix (the WAN over
// IPv6, from the chutes' global addresses alone) and on one without (no
// IPv6 beyond the gateway); both with an IPv6 LAN address (ways in over
// IPv6, DNATed to the chutes' ULAs).
func FuzzPolicyInvariants(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte("\x01\x00\x01\x03\x00\x03\x00\x03\x00\x01\x02\x01\x00\x01\x01\x00\x00\x00\x03\x03\x03\x03\x03\x03\x01\x01\x01\x01"))
	f.Add([]byte(strings.Repeat("\x02\x01\x00", 40)))
	// Five chutes with wan and everything, on a gateway without a
	// delegated IPv6 prefix (the deck's last bit).
	f.Add([]byte("\x03" + strings.Repeat("\x01", 120)))
	f.Fuzz(func(t *testing.T, b []byte) {
		topo, _, lanMACs := simTopo()
		deck := &policyDeck{b}
		chutes := deck.chutes(topo, [][]byte{lanMACs[0], lanMACs[1]})
		if deck.bit() { // what is left of the deck: seeds keep their chutes
			topo.Global6 = netip.Prefix{}
		}
		for _, c := range chutes {
			if err := errors.Join(c.Net.Check(), topo.checkDNAT6(c.Net)); err != nil {
				t.Fatalf("the deck dealt an invalid policy: %v", err)
			}
		}
		w := newSimWorld(topo, chutes, lanMACs)
		for _, a := range ofsim.Ambiguities(w.d.Flows) {
			t.Errorf("%s\n%s", a, describe(chutes))
		}
		for _, c := range chutes {
			for _, six := range []bool{false, true} {
				// From this chute to the world.
				for _, o := range chutes {
					if o == c {
						continue
					}
					for _, proto := range []string{"tcp", "ping", "ack"} {
						to := o.Name + ":5432"
						if proto == "ping" {
							to = o.Name
						}
						ok, notes := mustRun(t, w, reachCase{from: c.Name, to: to, proto: proto, six: six})
						if ok && !mutual(c, o) {
							t.Errorf("%s reaches %s (%s, IPv6 %v) without mutual peers (%q)\n%s", c.Name, o.Name, proto, six, notes, describe(chutes))
						}
						if !ok && mutual(c, o) && proto != "ack" {
							t.Errorf("%s cannot reach its mutual peer %s (%s, IPv6 %v): %q\n%s", c.Name, o.Name, proto, six, notes, describe(chutes))
						}
					}
				}
				for _, port := range []uint16{80, 81, 443} {
					want := c.Net.WAN && (!six || topo.Global6.IsValid())
					if ok, notes := mustRun(t, w, reachCase{from: c.Name, to: fmt.Sprintf("cloud:%d", port), six: six}); ok != want {
						t.Errorf("%s to the WAN port %d (IPv6 %v, global prefix %v): reached %v with wan %v (%q)\n%s", c.Name, port, six, topo.Global6, ok, c.Net.WAN, notes, describe(chutes))
					}
				}
				noStrangerWayIn(t, w, c, six, chutes)
				// Answers to connections that do not exist, to each of
				// the chute's addresses, from everyone but the gateway to
				// its ULA and IPv4 address: it may connect to chutes
				// there, and the tracker takes a segment of a connection
				// under way (a lone ACK) for a new one, as it takes a SYN.
				for _, global := range []bool{false, six && topo.Global6.IsValid()} {
					froms := []string{"lan1", "lan2", "cloud"}
					if global {
						froms = append(froms, "gw")
					}
					for _, from := range froms {
						for _, port := range []string{"80", "8081", "5432"} {
							if ok, notes := mustRun(t, w, reachCase{from: from, to: c.Name + ":" + port, proto: "ack", six: six, global: global}); ok {
								t.Errorf("an answer from %s to %s:%s (IPv6 %v, global %v) with no connection was delivered (%q)\n%s", from, c.Name, port, six, global, notes, describe(chutes))
							}
						}
					}
				}
			}
			noWANLeak(t, w, c)
			noChuteLeak(t, w, c, chutes)
			noNDSpoof(t, w, c, chutes)
		}
	})
}

// noStrangerWayIn has LAN users connect to every gateway port and
// redirected address the deck deals: one reaches c only if c declares
// it, and always then.
func noStrangerWayIn(t *testing.T, w *simWorld, c *attached, six bool, chutes []*attached) {
	t.Helper()
	for gp := uint16(8000); gp < 8004; gp++ {
		exposes := slices.ContainsFunc(c.Net.Expose, func(e Expose) bool { return e.GatewayPort == gp })
		if ok, notes := mustRun(t, w, reachCase{from: "lan1", to: fmt.Sprintf("gwlan:%d", gp), at: c.Name + ":80", six: six}); ok != exposes {
			t.Errorf("lan1 to the gateway's port %d (IPv6 %v) reaches %s: %v, exposed by it: %v (%q)\n%s", gp, six, c.Name, ok, exposes, notes, describe(chutes))
		}
	}
	cloud, port := cloudIP, 8081
	if six {
		cloud, port = cloud6, 8084
	}
	for _, cp := range []uint16{80, 81} {
		to := netip.AddrPortFrom(cloud, cp)
		redirected := slices.ContainsFunc(c.Net.Redirect, func(r Redirect) bool { return r.To == to })
		if ok, notes := mustRun(t, w, reachCase{from: "lan2", to: fmt.Sprintf("cloud:%d", cp), at: fmt.Sprintf("%s:%d", c.Name, port), six: six}); ok != redirected {
			t.Errorf("lan2 to %s reaches %s: %v, redirected to it: %v (%q)\n%s", to, c.Name, ok, redirected, notes, describe(chutes))
		}
	}
}

func mustRun(t *testing.T, w *simWorld, c reachCase) (bool, []string) {
	t.Helper()
	ok, notes, err := w.run(c)
	if err != nil {
		t.Fatalf("simulator, %s -> %s (%s): %v", c.from, c.to, c.proto, err)
	}
	return ok, notes
}

// noWANLeak sends c's packets straight at the gateway's MAC, to addresses
// the flows know nothing of, from each of its addresses: without wan,
// none may be handed to the gateway's kernel for routing, nor with wan
// any IPv6 but from its global address.
func noWANLeak(t *testing.T, w *simWorld, c *attached) {
	t.Helper()
	if err := w.reset(); err != nil {
		t.Fatal(err)
	}
	sw := w.sw
	global := AddressFor6(w.topo.Subnet, w.topo.Global6, c.IP)
	for _, dst := range []netip.Addr{cloudIP, netip.MustParseAddr("192.0.2.99"), netip.MustParseAddr("8.8.8.8"),
		cloud6, netip.MustParseAddr("2001:db8::99"), lanV6[0]} {
		for _, proto := range []uint8{ofsim.ProtoTCP, ofsim.ProtoUDP, ofsim.ProtoICMP} {
			p := chutePacket(w, c, dst, proto, ofsim.TCPSyn)
			p.EthDst = w.topo.GatewayMAC
			ps := []ofsim.Packet{p}
			if dst.Is6() && global.IsValid() {
				p.Src = global
				ps = append(ps, p)
			}
			for _, p := range ps {
				tr, err := sw.Run(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range tr.OutputTo(ofp.PortLocal) {
					if o.Dst == dst && (!c.Net.WAN || dst.Is6() && o.Src != global) {
						t.Errorf("%s with wan %v: %s handed to the gateway for routing by %q", c.Name, c.Net.WAN, o, tr.Note())
					}
				}
			}
		}
	}
}

// noChuteLeak sends c's packets straight at the other chutes' MACs (a
// chute can skip ARP: their MACs follow from their names) and the
// gateway's: none may be delivered to a chute that is not a mutual peer.
func noChuteLeak(t *testing.T, w *simWorld, c *attached, chutes []*attached) {
	t.Helper()
	for _, o := range chutes {
		if o == c || mutual(c, o) {
			continue
		}
		for _, mac := range [][]byte{o.MAC, w.topo.GatewayMAC} {
			for _, proto := range []uint8{ofsim.ProtoTCP, ofsim.ProtoUDP, ofsim.ProtoICMP} {
				for _, flags := range []uint16{ofsim.TCPSyn, ofsim.TCPAck} {
					for _, dst := range []netip.Addr{o.IP, AddressFor6(w.topo.Subnet, w.topo.Subnet6, o.IP)} {
						if err := w.reset(); err != nil {
							t.Fatal(err)
						}
						p := chutePacket(w, c, dst, proto, flags)
						p.EthDst = mac
						tr, err := w.sw.Run(p)
						if err != nil {
							t.Fatal(err)
						}
						if got := tr.OutputTo(o.Port); len(got) > 0 {
							t.Errorf("%s's %s was delivered to %s, not a mutual peer, by %q", c.Name, &p, o.Name, tr.Note())
						}
					}
				}
			}
		}
	}
}

// chutePacket is a packet from c to dst of proto, from c's address of
// dst's family (an echo request for ICMP).
func chutePacket(w *simWorld, c *attached, dst netip.Addr, proto uint8, flags uint16) ofsim.Packet {
	p := ofsim.Packet{InPort: c.Port, EthSrc: c.MAC, EthType: ofsim.EthIPv4,
		Src: c.IP, Dst: dst, Proto: proto, SrcPort: 40000, DstPort: 5432, TCPFlags: flags, ICMPType: 8}
	if dst.Is6() {
		p.EthType, p.Src = ofsim.EthIPv6, AddressFor6(w.topo.Subnet, w.topo.Subnet6, c.IP)
		if proto == ofsim.ProtoICMP {
			p.Proto, p.ICMPType = ofsim.ProtoICMPv6, 128
		}
	}
	return p
}

// noNDSpoof has c advertise every other chute's and the gateway's IPv6
// address, to every MAC: no advertisement leaves the switch.
func noNDSpoof(t *testing.T, w *simWorld, c *attached, chutes []*attached) {
	t.Helper()
	targets := []netip.Addr{w.topo.Gateway6}
	macs := [][]byte{w.topo.GatewayMAC}
	for _, o := range chutes {
		if o != c {
			targets = append(targets, AddressFor6(w.topo.Subnet, w.topo.Subnet6, o.IP))
			macs = append(macs, o.MAC)
		}
	}
	for _, target := range targets {
		for _, mac := range macs {
			if err := w.reset(); err != nil {
				t.Fatal(err)
			}
			p := ofsim.Packet{InPort: c.Port, EthSrc: c.MAC, EthDst: mac, EthType: ofsim.EthIPv6,
				Src: AddressFor6(w.topo.Subnet, w.topo.Subnet6, c.IP), Dst: target, Proto: ofsim.ProtoICMPv6,
				ICMPType: 136, NDTarget: target, NDTLL: c.MAC}
			tr, err := w.sw.Run(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Outputs) > 0 {
				t.Errorf("%s advertised %s to %s: out of %v by %q", c.Name, target, net.HardwareAddr(mac), tr.Outputs, tr.Note())
			}
		}
	}
}

func describe(chutes []*attached) string {
	var b strings.Builder
	for _, c := range chutes {
		fmt.Fprintf(&b, "  %s: %+v\n", c.Name, c.Net)
	}
	return b.String()
}
