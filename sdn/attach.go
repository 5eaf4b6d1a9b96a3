package sdn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"paradrop/netconf"
)

// chuteIDKey is the external_ids key naming a port's chute in OVSDB.
const chuteIDKey = "paradrop-chute"

// Chute is what the network needs to know of a chute. The manager keeps
// MAC and IP (see AddressFor, netconf.MACFor) for the chute's lifetime.
type Chute struct {
	Name      string
	NetNS     string // path of the chute's bind-mounted network namespace
	MAC       net.HardwareAddr
	IP        netip.Addr
	Net       Policy
	Bandwidth Bandwidth
}

// AddressFor returns the address of chute slot slot (0, 1, ...) in subnet:
// .10 plus slot. It returns the zero Addr if the slot is outside the
// subnet (or it is not IPv4).
func AddressFor(subnet netip.Prefix, slot int) netip.Addr {
	if !subnet.IsValid() || !subnet.Addr().Is4() || slot < 0 || subnet.Bits() > 24 {
		return netip.Addr{}
	}
	size := uint64(1) << (32 - subnet.Bits())
	host := uint64(10 + slot)
	if host >= size-1 { // the broadcast address and beyond
		return netip.Addr{}
	}
	b := subnet.Masked().Addr().As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]) + host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Address6 is the IPv6 address of the chute whose IPv4 address is ip: its
// host index in Subnet6.
func (n *Network) Address6(ip netip.Addr) netip.Addr {
	return AddressFor6(n.cfg.Subnet, n.cfg.Subnet6, ip)
}

// Subnet6 is the chutes' IPv6 /64, as configured or derived.
func (n *Network) Subnet6() netip.Prefix { return n.cfg.Subnet6 }

// Attach connects chute c to the bridge, or corrects its connection: the
// veth with eth0 in c.NetNS (address c.IP and Address6(c.IP), default
// route via the gateway,
// on-link routes to the LAN), the bridge port, and the flows for what c
// declares, installed before it returns.
func (n *Network) Attach(ctx context.Context, c Chute) error {
	if err := n.attach(ctx, c, false); err != nil {
		return fmt.Errorf("attach chute %s: %w", c.Name, err)
	}
	return nil
}

// Update applies a changed policy or bandwidth of an attached
// chute live: flows and meters are modified, connections allowed by both
// the old and the new policy survive.
func (n *Network) Update(ctx context.Context, c Chute) error {
	if err := n.attach(ctx, c, true); err != nil {
		return fmt.Errorf("update chute %s: %w", c.Name, err)
	}
	return nil
}

func (n *Network) attach(ctx context.Context, c Chute, update bool) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	if err := n.check(c, update); err != nil {
		return err
	}
	hostIf := netconf.HostIfFor(c.Name)
	link := netconf.Link{HostIf: hostIf, NetNS: c.NetNS, MAC: c.MAC,
		Addr: netip.PrefixFrom(c.IP, n.cfg.Subnet.Bits()), Gateway: n.gateway,
		Addr6: netip.PrefixFrom(n.Address6(c.IP), n.cfg.Subnet6.Bits())}
	if n.global6.IsValid() {
		// Its IPv6 beyond the gateway's links goes to the gateway, which
		// routes what the flows let through.
		link.Global6 = netip.PrefixFrom(n.AddressGlobal6(c.IP), n.global6.Bits())
		link.Gateway6 = n.gateway6
	}
	if err := n.inGW(func() error { return netconf.EnsureLink(link) }); err != nil {
		return err
	}
	n.mu.Lock()
	topo, db := n.topo, n.db
	n.mu.Unlock()
	if err := ensureOnLink(c.NetNS, onLink(topo, c.Net)); err != nil {
		return err
	}
	if err := db.AddPort(ctx, n.cfg.Bridge, hostIf, "", map[string]string{chuteIDKey: c.Name}); err != nil {
		return err
	}
	port, err := db.OFPort(ctx, hostIf)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.chutes[c.Name] = &attached{Chute: c, Port: port}
	n.mu.Unlock()
	return n.apply(ctx)
}

// Enforceable refuses (ErrUnenforceable) a policy that this gateway
// cannot give as written: what Check refuses, and what its configuration
// lacks, such as an IPv6 LAN address for IPv6 redirects. The chute
// manager asks before it installs a chute; Attach and Update ask again.
func (n *Network) Enforceable(p Policy) error {
	t := topology{Subnet6: n.cfg.Subnet6, Global6: n.global6, LANAddr6: n.cfg.LANAddr6}
	return errors.Join(p.Check(), t.checkDNAT6(p))
}

// check refuses a chute whose addresses or LAN-facing ports clash with the
// gateway's or another chute's.
func (n *Network) check(c Chute, update bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, known := n.chutes[c.Name]
	switch {
	case c.Name == "":
		return errors.New("no name")
	case update && !known:
		return ErrNotAttached
	case c.NetNS == "":
		return errors.New("no network namespace")
	case len(c.MAC) != 6:
		return fmt.Errorf("MAC %s is not 6 bytes", c.MAC)
	case !c.IP.Is4() || !n.cfg.Subnet.Contains(c.IP) || c.IP == n.gateway ||
		c.IP == n.cfg.Subnet.Addr() || hostIndex(n.cfg.Subnet, c.IP) == 1<<(32-n.cfg.Subnet.Bits())-1:
		return fmt.Errorf("address %s is not a chute address in %s", c.IP, n.cfg.Subnet)
	}
	if err := n.Enforceable(c.Net); err != nil {
		return err
	}
	type key struct{ addr, proto string }
	taken := map[key]string{}
	claims := func(o Chute) []key {
		var ks []key
		for _, e := range o.Net.Expose {
			ks = append(ks, key{fmt.Sprint(e.GatewayPort), e.Proto.String()})
		}
		for _, r := range o.Net.Redirect {
			ks = append(ks, key{r.To.String(), r.Proto.String()})
		}
		return ks
	}
	for name, o := range n.chutes {
		if name == c.Name {
			continue
		}
		if o.IP == c.IP || slices.Equal(o.MAC, c.MAC) {
			return fmt.Errorf("address %s or MAC %s is chute %s's", c.IP, c.MAC, name)
		}
		for _, k := range claims(o.Chute) {
			taken[k] = name
		}
	}
	for _, k := range claims(c) {
		if other, ok := taken[k]; ok {
			return fmt.Errorf("%s/%s is already exposed or redirected by chute %s", k.addr, k.proto, other)
		}
	}
	return nil
}

// Detach removes chute name's flows, bridge port and veth. Detaching an
// unknown chute cleans up whatever is left of it by name.
func (n *Network) Detach(ctx context.Context, name string) error {
	if err := n.detach(ctx, name); err != nil {
		return fmt.Errorf("detach chute %s: %w", name, err)
	}
	return nil
}

func (n *Network) detach(ctx context.Context, name string) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.mu.Lock()
	delete(n.chutes, name)
	db := n.db
	n.mu.Unlock()
	// Flows first, so no flow names a port that is gone or reused.
	if err := n.apply(ctx); err != nil {
		return err
	}
	hostIf := netconf.HostIfFor(name)
	if err := db.DeletePort(ctx, n.cfg.Bridge, hostIf); err != nil {
		return err
	}
	return n.inGW(func() error { return netconf.DeleteLink(hostIf) })
}

// ensureOnLink makes prefixes the on-link routes (ours: protocol static,
// scope link, no gateway) of eth0 in the chute's namespace, IPv4 and
// IPv6, so the chute resolves LAN hosts itself; routes of ours it no
// longer needs are removed. (The kernel keeps no scope on IPv6 routes.)
func ensureOnLink(nsPath string, prefixes []netip.Prefix) error {
	err := netconf.InNetNS(nsPath, func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, p := range prefixes {
			want[p.String()] = true
		}
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := netlink.RouteList(link, family)
			if err != nil {
				return err
			}
			for _, r := range routes {
				ours := r.Protocol == unix.RTPROT_STATIC && r.Dst != nil && r.Gw == nil &&
					(r.Scope == netlink.SCOPE_LINK || family == netlink.FAMILY_V6)
				if ours && !want[r.Dst.String()] {
					if err := netlink.RouteDel(&r); err != nil {
						return err
					}
				}
			}
		}
		for _, p := range prefixes {
			dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
			if err := netlink.RouteReplace(r); err != nil {
				return fmt.Errorf("route %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("on-link routes in %s: %w", nsPath, err)
	}
	return nil
}

// ErrNotAttached is returned (wrapped) for a chute the network does not
// know.
var ErrNotAttached = errors.New("chute not attached")
