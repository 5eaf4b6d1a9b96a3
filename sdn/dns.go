package sdn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// DNSPort is where chutes ask for names: the gateway's address in the
// chute subnet, UDP and TCP (the flows let every chute reach it).
const DNSPort = 53

// Gateway is the gateway's address in the chute subnet.
func (n *Network) Gateway() netip.Addr { return n.gateway }

// DNSView is what the resolver may tell the chute at an address.
type DNSView struct {
	Name string
	WAN  bool // its policy lets it reach the WAN
	// Names are the chutes it may reach by name, itself and its mutual
	// peers, with their addresses (IPv4, and IPv6 when the network has it).
	Names map[string][]netip.Addr
}

// ChuteAt is the view of the attached chute that has address a (IPv4 or
// IPv6), as of now: peers attached or gone since change it.
func (n *Network) ChuteAt(a netip.Addr) (DNSView, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.chutes {
		if c.IP != a && n.Address6(c.IP) != a {
			continue
		}
		v := DNSView{Name: c.Name, WAN: c.Net.WAN, Names: map[string][]netip.Addr{}}
		for _, p := range append(mutualPeers(c, n.chutes), c) {
			v.Names[p.Name] = []netip.Addr{p.IP}
			if a6 := n.Address6(p.IP); a6.IsValid() {
				v.Names[p.Name] = append(v.Names[p.Name], a6)
			}
		}
		return v, true
	}
	return DNSView{}, false
}

// ListenDNS listens at the gateway's address in the chute subnet, port
// 53, UDP and TCP, in the gateway's namespace: the chutes' resolver.
func (n *Network) ListenDNS() (net.PacketConn, net.Listener, error) {
	addr := netip.AddrPortFrom(n.gateway, DNSPort).String()
	var pc net.PacketConn
	var ln net.Listener
	err := n.inGW(func() (err error) {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			pc.Close()
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("chute DNS at %s: %w", addr, err)
	}
	return pc, ln, nil
}

// DialContext connects from the gateway's namespace (where its uplink
// and resolvers are), as net.Dialer does.
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.inGW(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
	return c, err
}
