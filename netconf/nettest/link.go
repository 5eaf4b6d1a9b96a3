package nettest

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"paradrop/netconf"
)

// End is one end of a veth pair made by Veth.
type End struct {
	Host   *Host            // nil: the test process's own namespace
	If     string           // interface name; in the test's namespace use Name
	Addr   netip.Prefix     // optional
	MAC    net.HardwareAddr // optional
	Master string           // optional Linux bridge (see Bridge) to enslave to
}

// Veth connects a and b with a veth pair, configures and brings up both ends.
// TX checksum offload is off on both, as the OVS userspace datapath needs.
// Ends in a Host go away with it; an end in the test's namespace is deleted
// when the test ends.
func Veth(t testing.TB, a, b End) {
	t.Helper()
	if err := veth(t, a, b); err != nil {
		t.Fatalf("nettest: veth %s-%s: %v", a.If, b.If, err)
	}
}

func veth(t testing.TB, a, b End) error {
	nsA, err := nsOf(a.Host)
	if err != nil {
		return err
	}
	defer nsA.Close()
	nsB, err := nsOf(b.Host)
	if err != nil {
		return err
	}
	defer nsB.Close()
	// Both ends are born in their namespaces, so their names never meet
	// the test's own namespace unless they live there.
	link := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: a.If, HardwareAddr: a.MAC, Namespace: netlink.NsFd(nsA)},
		PeerName:         b.If,
		PeerHardwareAddr: b.MAC,
		PeerNamespace:    netlink.NsFd(nsB),
	}
	if err := netlink.LinkAdd(link); err != nil {
		return err
	}
	for _, e := range []End{a, b} {
		if e.Host == nil {
			name := e.If
			t.Cleanup(func() { deleteLink(name) })
		}
	}
	for _, e := range []End{a, b} {
		if err := configure(e); err != nil {
			return fmt.Errorf("%s: %w", e.If, err)
		}
	}
	return nil
}

func configure(e End) error {
	h, err := handle(e.Host)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(e.If)
	if err != nil {
		return err
	}
	if e.Addr.IsValid() {
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(e.Addr)}); err != nil {
			return err
		}
	}
	if e.Master != "" {
		br, err := h.LinkByName(e.Master)
		if err != nil {
			return err
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return err
		}
	}
	if err := netconf.DisableTxOffload(e.If, pathOf(e.Host)); err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// Bridge creates a Linux bridge named name in h (nil: the test's namespace),
// up, with no address; attach hosts with End.Master.
func Bridge(t testing.TB, h *Host, name string) {
	t.Helper()
	nh, err := handle(h)
	if err != nil {
		t.Fatalf("nettest: bridge %s: %v", name, err)
	}
	defer nh.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := nh.LinkAdd(br); err != nil {
		t.Fatalf("nettest: bridge %s: %v", name, err)
	}
	if h == nil {
		t.Cleanup(func() { deleteLink(name) })
	}
	if err := nh.LinkSetUp(br); err != nil {
		t.Fatalf("nettest: bridge %s: %v", name, err)
	}
}

// Route adds a route to dst via gw in h; an invalid (zero) dst means the
// default route.
func (h *Host) Route(t testing.TB, dst netip.Prefix, gw netip.Addr) {
	t.Helper()
	nh, err := handle(h)
	if err != nil {
		t.Fatalf("nettest: route in %s: %v", h.Name, err)
	}
	defer nh.Close()
	if !dst.IsValid() {
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	r := &netlink.Route{Dst: ipNet(dst), Gw: gw.AsSlice()}
	if err := nh.RouteAdd(r); err != nil {
		t.Fatalf("nettest: route %s via %s in %s: %v", dst, gw, h.Name, err)
	}
}

// deleteLink removes name from the test's namespace if it is still there.
func deleteLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil {
		netlink.LinkDel(l)
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func pathOf(h *Host) string {
	if h == nil {
		return ""
	}
	return h.NetNS
}

func nsOf(h *Host) (netns.NsHandle, error) {
	if h == nil {
		return netns.Get()
	}
	return netns.GetFromPath(h.NetNS)
}

// handle returns a netlink handle whose sockets live in h's namespace.
func handle(h *Host) (*netlink.Handle, error) {
	ns, err := nsOf(h)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}
