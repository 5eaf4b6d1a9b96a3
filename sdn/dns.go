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

// ChuteAt names the attached chute that has address a, and whether its
// policy lets it reach the WAN.
func (n *Network) ChuteAt(a netip.Addr) (name string, wan, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.chutes {
		if c.IP == a {
			return c.Name, c.Net.WAN, true
		}
	}
	return "", false, false
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
