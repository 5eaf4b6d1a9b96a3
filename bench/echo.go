package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"paradrop/netconf"
)

// echoProber times ICMP echo round trips from a namespace to one
// address, one at a time, each request marked with the TOS (IPv4) or
// traffic class (IPv6) it is given: the floor comparison tells ours'
// packets from the floor's by that mark (see network_floor.go). The LAN
// host's kernel copies the mark into its reply.
type echoProber struct {
	c   *icmp.PacketConn
	six bool
	dst net.Addr
	id  int
	seq int
	tos int
	buf []byte
}

func newEchoProber(ns string, dst netip.Addr) (*echoProber, error) {
	e := &echoProber{six: dst.Is6(), dst: &net.IPAddr{IP: dst.AsSlice()}, id: os.Getpid() & 0xffff, tos: -1, buf: make([]byte, 1500)}
	network, laddr := "ip4:icmp", "0.0.0.0"
	if e.six {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	// The socket belongs to the namespace it is made in.
	if err := netconf.InNetNS(ns, func() (err error) {
		e.c, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return nil, fmt.Errorf("echo prober: %w", err)
	}
	return e, nil
}

func (e *echoProber) Close() error { return e.c.Close() }

// probe sends one echo request marked tos (the whole byte, ECN bits 0)
// and waits up to timeout for its reply; lost is true if none came.
func (e *echoProber) probe(tos int, timeout time.Duration) (rtt time.Duration, lost bool, err error) {
	if tos != e.tos {
		if e.six {
			err = e.c.IPv6PacketConn().SetTrafficClass(tos)
		} else {
			err = e.c.IPv4PacketConn().SetTOS(tos)
		}
		if err != nil {
			return 0, false, fmt.Errorf("echo prober: mark %#x: %w", tos, err)
		}
		e.tos = tos
	}
	e.seq = (e.seq + 1) & 0xffff
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if e.six {
		// The kernel computes ICMPv6 checksums on raw sockets.
		typ, reply, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	msg, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: e.id, Seq: e.seq, Data: make([]byte, 56)}}).Marshal(nil)
	if err != nil {
		return 0, false, err
	}
	start := time.Now()
	if _, err := e.c.WriteTo(msg, e.dst); err != nil {
		return 0, false, fmt.Errorf("echo prober: %w", err)
	}
	deadline := start.Add(timeout)
	if err := e.c.SetReadDeadline(deadline); err != nil {
		return 0, false, err
	}
	for {
		n, _, err := e.c.ReadFrom(e.buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, true, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("echo prober: %w", err)
		}
		at := time.Now()
		m, err := icmp.ParseMessage(proto, e.buf[:n])
		if err != nil || m.Type != reply {
			continue // the namespace's other ICMP (neighbour discovery...)
		}
		if echo, ok := m.Body.(*icmp.Echo); ok && echo.ID == e.id && echo.Seq == e.seq {
			return at.Sub(start), false, nil
		}
	}
}
