package sdn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Policy is a chute's network access in the switch's own terms: what it
// may reach (WAN, LAN hosts, peers) and what reaches it (exposed ports,
// redirected addresses). The chute manager builds it once from the
// manifest; the zero Policy is no access at all. Addresses are netip
// values of either family: what the switch cannot enforce is refused by
// Check, never skipped.
type Policy struct {
	WAN      bool
	LAN      []LANRule
	Expose   []Expose
	Redirect []Redirect
	Peers    []string // chute names; both sides must list each other
}

// LANRule lets the chute reach LAN hosts: the addresses in Prefix (a single
// address is a full-length prefix) or the host with MAC, on Ports (all
// ports when empty), over TCP and UDP.
type LANRule struct {
	Prefix netip.Prefix // invalid when MAC is set
	MAC    net.HardwareAddr
	Ports  []uint16
}

// Proto is an IP protocol number.
type Proto uint8

// The protocols a port rule can name.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto %d", uint8(p))
}

// Expose forwards GatewayPort on the gateway's LAN address to the chute's
// Port.
type Expose struct {
	Port, GatewayPort uint16
	Proto             Proto
}

// Redirect makes the chute's Port answer, transparently, LAN users'
// connections to To.
type Redirect struct {
	To    netip.AddrPort
	Port  uint16
	Proto Proto
}

// BitRate is a bandwidth in bits per second; 0 means unlimited.
type BitRate uint64

// Bandwidth limits a chute's traffic: Egress what it sends, Ingress what is
// delivered to it.
type Bandwidth struct {
	Egress, Ingress BitRate
}

// ErrUnenforceable is returned (wrapped) for a policy the switch cannot
// enforce as written, such as an IPv6 redirect on a gateway without an
// IPv6 LAN address.
var ErrUnenforceable = errors.New("not enforceable by the chute network")

// Check refuses a policy that no switch could enforce: every rule in it
// must turn into flows, or the chute would be told it has access that it
// silently lacks. Network.Enforceable also refuses what this gateway's
// configuration cannot give. (Rules that need a LAN on a gateway
// configured without one are the operator's choice and have nothing to
// reach.)
func (p Policy) Check() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrUnenforceable, field, fmt.Sprintf(format, args...)))
	}
	proto := func(field string, pr Proto) {
		if pr != TCP && pr != UDP {
			fail(field, "%s is not tcp or udp", pr)
		}
	}
	for i, r := range p.LAN {
		f := fmt.Sprintf("net.lan[%d]", i)
		switch {
		case r.Prefix.IsValid() == (r.MAC != nil):
			fail(f, "needs exactly one of an address, a prefix or a MAC")
		case r.MAC != nil && len(r.MAC) != 6:
			fail(f, "MAC %s is not an Ethernet address", r.MAC)
		case r.Prefix.IsValid() && r.Prefix.Addr().Is4In6():
			fail(f, "%s is an IPv4-mapped IPv6 address", prefixText(r.Prefix))
		}
		for j, port := range r.Ports {
			if port == 0 {
				fail(fmt.Sprintf("%s.ports[%d]", f, j), "port 0")
			}
		}
	}
	for i, e := range p.Expose {
		f := fmt.Sprintf("net.expose[%d]", i)
		if e.Port == 0 || e.GatewayPort == 0 {
			fail(f, "port 0")
		}
		proto(f+".proto", e.Proto)
	}
	for i, r := range p.Redirect {
		f := fmt.Sprintf("net.redirect[%d]", i)
		switch {
		case !r.To.IsValid() || r.To.Port() == 0 || r.Port == 0:
			fail(f, "needs an address, a port and the chute's port")
		case r.To.Addr().Is4In6():
			fail(f+".to", "%s is an IPv4-mapped IPv6 address", r.To)
		}
		proto(f+".proto", r.Proto)
	}
	return errors.Join(errs...)
}

// prefixText writes a single address without its length.
func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
