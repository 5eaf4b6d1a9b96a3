package netconf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// chuteIf is the name of a chute's interface inside its namespace.
const chuteIf = "eth0"

// Link is a chute's attachment: a veth pair whose host end stays in the
// calling thread's namespace (to be added to the OVS bridge) and whose other
// end is eth0 inside the chute's namespace.
type Link struct {
	HostIf string           // host end, at most 15 bytes; see HostIfFor
	NetNS  string           // path of the chute's namespace (EnsureNetNS)
	MAC    net.HardwareAddr // of eth0; nil leaves the kernel's random one
	Addr   netip.Prefix     // of eth0, e.g. 10.131.0.11/24
	// Addr6 is eth0's IPv6 address, e.g. fd70:6472:6f70::b/64, the only
	// one beside its link-local address and Global6; invalid for none. Router
	// advertisements are ignored: the chute's IPv6 is what l says.
	Addr6 netip.Prefix
	// Global6 is eth0's global IPv6 address beside Addr6 (from the
	// gateway's delegated prefix); invalid for none.
	Global6 netip.Prefix
	Gateway netip.Addr // default route of the chute; zero for none
	// Gateway6 is the chute's IPv6 default route, in Addr6; zero for
	// none (IPv6 reaches only its links).
	Gateway6 netip.Addr
	MTU      int // of both ends; 0 leaves the default
}

// EnsureLink creates or repairs l: if the pair is missing or half gone (for
// example the chute's end vanished with a recreated namespace) it is created
// anew, then MAC, MTU, address (the only IPv4 one on eth0), default route,
// link state and TX checksum offload (off, see DisableTxOffload) are brought
// to what l says. Calling it again with the same l changes nothing.
func EnsureLink(l Link) error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("ensure link %q: %w", l.HostIf, err)
	}
	if err := ensureLink(l); err != nil {
		return fmt.Errorf("ensure link %q: %w", l.HostIf, err)
	}
	return nil
}

func (l Link) validate() error {
	switch {
	case l.HostIf == "" || len(l.HostIf) > unix.IFNAMSIZ-1:
		return fmt.Errorf("host interface name must be 1 to %d bytes", unix.IFNAMSIZ-1)
	case l.NetNS == "":
		return errors.New("no netns path")
	case l.MAC != nil && len(l.MAC) != 6:
		return fmt.Errorf("MAC %s is not 6 bytes", l.MAC)
	case !l.Addr.IsValid() || !l.Addr.Addr().Is4():
		return fmt.Errorf("address %s is not an IPv4 prefix", l.Addr)
	case l.Addr6.IsValid() && !l.Addr6.Addr().Is6():
		return fmt.Errorf("address %s is not an IPv6 prefix", l.Addr6)
	case l.Global6.IsValid() && (!l.Global6.Addr().Is6() || !l.Addr6.IsValid()):
		return fmt.Errorf("global address %s is not an IPv6 prefix beside an Addr6", l.Global6)
	case l.Gateway6.IsValid() && (!l.Addr6.IsValid() || !l.Addr6.Masked().Contains(l.Gateway6)):
		return fmt.Errorf("IPv6 gateway %s is outside %s", l.Gateway6, l.Addr6.Masked())
	case l.Gateway.IsValid() && !l.Addr.Masked().Contains(l.Gateway):
		return fmt.Errorf("gateway %s is outside %s", l.Gateway, l.Addr.Masked())
	case l.MTU < 0:
		return fmt.Errorf("negative MTU %d", l.MTU)
	}
	return nil
}

func ensureLink(l Link) error {
	ns, err := netns.GetFromPath(l.NetNS)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	// A handle whose sockets live in the chute's namespace, so the calling
	// thread can stay where the host end is.
	nsh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in netns: %w", err)
	}
	defer nsh.Close()

	host, peer, err := findPair(nsh, l.HostIf)
	if err != nil {
		return err
	}
	if host == nil || peer == nil {
		if host, peer, err = createPair(nsh, ns, l); err != nil {
			return err
		}
	}

	if l.MAC != nil && !bytes.Equal(peer.Attrs().HardwareAddr, l.MAC) {
		if err := nsh.LinkSetHardwareAddr(peer, l.MAC); err != nil {
			return fmt.Errorf("set MAC of %s: %w", chuteIf, err)
		}
	}
	if l.MTU > 0 {
		if host.Attrs().MTU != l.MTU {
			if err := netlink.LinkSetMTU(host, l.MTU); err != nil {
				return fmt.Errorf("set MTU: %w", err)
			}
		}
		if peer.Attrs().MTU != l.MTU {
			if err := nsh.LinkSetMTU(peer, l.MTU); err != nil {
				return fmt.Errorf("set MTU of %s: %w", chuteIf, err)
			}
		}
	}
	if err := setOnlyAddrs(nsh, peer, netlink.FAMILY_V4, l.Addr); err != nil {
		return err
	}
	if l.Addr6.IsValid() {
		if err := InNetNS(l.NetNS, func() error { return ignoreRA(chuteIf) }); err != nil {
			return err
		}
	}
	if err := setOnlyAddrs(nsh, peer, netlink.FAMILY_V6, l.Addr6, l.Global6); err != nil {
		return err
	}
	if err := DisableTxOffload(l.HostIf, ""); err != nil {
		return err
	}
	if err := DisableTxOffload(chuteIf, l.NetNS); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if err := nsh.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set %s up: %w", chuteIf, err)
	}
	// The route needs eth0 up, or the kernel rejects the gateway as
	// unreachable.
	if l.Gateway.IsValid() {
		def := &netlink.Route{
			LinkIndex: peer.Attrs().Index,
			Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			Gw:        l.Gateway.AsSlice(),
		}
		if err := nsh.RouteReplace(def); err != nil {
			return fmt.Errorf("default route via %s: %w", l.Gateway, err)
		}
	}
	return setRoute6(nsh, peer, l.Gateway6)
}

// setRoute6 makes via the chute's IPv6 default route, or removes the one
// it has for an invalid via.
func setRoute6(nsh *netlink.Handle, peer netlink.Link, via netip.Addr) error {
	def := &netlink.Route{
		LinkIndex: peer.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		Gw:        via.AsSlice(),
	}
	if via.IsValid() {
		if err := nsh.RouteReplace(def); err != nil {
			return fmt.Errorf("IPv6 default route via %s: %w", via, err)
		}
		return nil
	}
	routes, err := nsh.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: peer.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return fmt.Errorf("list IPv6 routes: %w", err)
	}
	for _, r := range routes {
		if r.Gw != nil && (r.Dst == nil || r.Dst.IP.IsUnspecified() && bytes.Count(r.Dst.Mask, []byte{0}) == len(r.Dst.Mask)) {
			if err := nsh.RouteDel(&r); err != nil {
				return fmt.Errorf("remove IPv6 default route via %s: %w", r.Gw, err)
			}
		}
	}
	return nil
}

// findPair returns the host end and the chute end if both exist and are the
// two ends of one veth; otherwise a nil for what is missing or foreign.
func findPair(nsh *netlink.Handle, hostIf string) (host, peer netlink.Link, err error) {
	host, err = lookupLink(nil, hostIf)
	if err != nil || host == nil {
		return nil, nil, err
	}
	if host.Type() != "veth" {
		return nil, nil, fmt.Errorf("%q exists and is a %s, not a veth", hostIf, host.Type())
	}
	peer, err = lookupLink(nsh, chuteIf)
	if err != nil || peer == nil {
		return host, nil, err
	}
	if peer.Type() != "veth" || peer.Attrs().ParentIndex != host.Attrs().Index ||
		host.Attrs().ParentIndex != peer.Attrs().Index {
		return host, nil, nil
	}
	return host, peer, nil
}

// createPair removes what is left of an old pair and creates the veth with
// its peer born inside the namespace, already named eth0, so the name never
// collides with the host's own eth0.
func createPair(nsh *netlink.Handle, ns netns.NsHandle, l Link) (host, peer netlink.Link, err error) {
	if err := DeleteLink(l.HostIf); err != nil {
		return nil, nil, err
	}
	if stale, err := lookupLink(nsh, chuteIf); err != nil {
		return nil, nil, err
	} else if stale != nil {
		if err := nsh.LinkDel(stale); err != nil {
			return nil, nil, fmt.Errorf("remove stale %s: %w", chuteIf, err)
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: l.HostIf, MTU: l.MTU},
		PeerName:         chuteIf,
		PeerHardwareAddr: l.MAC,
		PeerNamespace:    netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("create veth: %w", err)
	}
	if host, err = netlink.LinkByName(l.HostIf); err != nil {
		return nil, nil, err
	}
	if peer, err = nsh.LinkByName(chuteIf); err != nil {
		return nil, nil, fmt.Errorf("find %s: %w", chuteIf, err)
	}
	return host, peer, nil
}

// setOnlyAddrs makes the valid ones of ps the only addresses of their
// family on link (none valid: none), so a chute that moved to another
// address does not keep answering on the old one. IPv6 link-local
// addresses stay.
func setOnlyAddrs(nsh *netlink.Handle, link netlink.Link, family int, ps ...netip.Prefix) error {
	addrs, err := nsh.AddrList(link, family)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", chuteIf, err)
	}
	want := map[string]netip.Prefix{}
	for _, p := range ps {
		if p.IsValid() {
			want[nlAddr(p).IPNet.String()] = p
		}
	}
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_LINK && family == netlink.FAMILY_V6 {
			continue
		}
		if _, ok := want[a.IPNet.String()]; !ok {
			if err := nsh.AddrDel(link, &a); err != nil {
				return fmt.Errorf("remove old address %s: %w", a.IPNet, err)
			}
		}
	}
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if err := nsh.AddrReplace(link, nlAddr(p)); err != nil {
			return fmt.Errorf("set address %s: %w", p, err)
		}
	}
	return nil
}

// ignoreRA makes ifname, in the calling thread's namespace, take no
// address or route from router advertisements.
func ignoreRA(ifname string) error {
	for _, k := range []string{"accept_ra", "autoconf"} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/"+k, []byte("0"), 0); err != nil {
			return fmt.Errorf("%s: %w", ifname, err)
		}
	}
	return nil
}

// DeleteLink removes the veth whose host end is hostIf, and with it the
// chute's eth0. It is not an error if it does not exist; it is one if
// hostIf is not a veth, so a wrong name cannot take down a real interface.
func DeleteLink(hostIf string) error {
	link, err := lookupLink(nil, hostIf)
	if err != nil {
		return fmt.Errorf("delete link %q: %w", hostIf, err)
	}
	if link == nil {
		return nil
	}
	if link.Type() != "veth" {
		return fmt.Errorf("delete link %q: is a %s, not a veth", hostIf, link.Type())
	}
	// ENODEV: the kernel got there first, as it does when the chute's
	// namespace is destroyed and takes the pair with it.
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %q: %w", hostIf, err)
	}
	return nil
}

// lookupLink finds name through h, or in the calling thread's namespace if
// h is nil; a missing link is (nil, nil).
func lookupLink(h *netlink.Handle, name string) (netlink.Link, error) {
	var (
		link netlink.Link
		err  error
	)
	if h == nil {
		link, err = netlink.LinkByName(name)
	} else {
		link, err = h.LinkByName(name)
	}
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	return link, err
}
