package netconf

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetAddr puts address p on ifname and brings the link up, in the calling
// thread's namespace. It is idempotent, and additive: other addresses on the
// link are left alone, because the link (typically the bridge's internal
// port) is not ours alone.
func SetAddr(ifname string, p netip.Prefix) error {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("set addr %s on %q: %w", p, ifname, err)
	}
	if err := netlink.AddrReplace(link, nlAddr(p)); err != nil {
		return fmt.Errorf("set addr %s on %q: %w", p, ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set addr %s on %q: up: %w", p, ifname, err)
	}
	return nil
}

// nlAddr is p as netlink takes it. An IPv6 address skips duplicate
// address detection: ours are unique by construction (chutes' by their
// slot), and a tentative address would fail the first seconds' traffic.
func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// ipNet keeps the host bits of p (net.IPNet from netip would mask them).
func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
