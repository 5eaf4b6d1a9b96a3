package netconf_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// TestEnsureLink attaches a chute namespace to a "gateway" namespace (the
// host end lives there, not in the machine's real namespace), from several
// starting states, and checks the result twice to show idempotency.
func TestEnsureLink(t *testing.T) {
	nettest.Require(t, "busybox", "ethtool")
	cases := []struct {
		name   string
		addr   string // chute's address; the gateway is .1 of its subnet
		mtu    int
		before func(t *testing.T, gw, chute *nettest.Host, l netconf.Link)
	}{
		{name: "fresh", addr: "10.131.0.11/24"},
		{name: "lower MTU", addr: "198.51.100.11/24", mtu: 1400},
		{name: "address changed", addr: "10.131.0.12/24",
			before: func(t *testing.T, gw, _ *nettest.Host, l netconf.Link) {
				l.Addr = netip.MustParsePrefix("10.131.0.99/24")
				inNS(t, gw, func() error { return netconf.EnsureLink(l) })
			}},
		{name: "namespace recreated", addr: "10.131.0.13/24",
			before: func(t *testing.T, gw, chute *nettest.Host, l netconf.Link) {
				inNS(t, gw, func() error { return netconf.EnsureLink(l) })
				// The old pair dies with the old namespace, asynchronously.
				if err := netconf.DeleteNetNS(chute.NetNS); err != nil {
					t.Fatal(err)
				}
				if err := netconf.EnsureNetNS(chute.NetNS); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "foreign eth0 replaced", addr: "10.131.0.14/24",
			before: func(t *testing.T, _, chute *nettest.Host, _ netconf.Link) {
				nettest.Exec(t, chute, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "stale0")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw, chute := nettest.NewHost(t), nettest.NewHost(t)
			addr := netip.MustParsePrefix(tc.addr)
			gwAddr := netip.PrefixFrom(addr.Masked().Addr().Next(), addr.Bits())
			l := netconf.Link{
				HostIf:  netconf.HostIfFor(chute.Name),
				NetNS:   chute.NetNS,
				MAC:     netconf.MACFor(chute.Name),
				Addr:    addr,
				Gateway: gwAddr.Addr(),
				MTU:     tc.mtu,
			}
			if tc.before != nil {
				tc.before(t, gw, chute, l)
			}

			var first linkState
			for i := range 2 {
				inNS(t, gw, func() error { return netconf.EnsureLink(l) })
				st := readLink(t, gw, chute, l)
				if i == 0 {
					first = st
				} else if st.hostIndex != first.hostIndex || st.chuteIndex != first.chuteIndex {
					t.Errorf("second EnsureLink recreated the pair: %+v, then %+v", first, st)
				}
			}
			inNS(t, gw, func() error { return netconf.SetAddr(l.HostIf, gwAddr) })

			for _, h := range []struct {
				host   *nettest.Host
				ifname string
			}{{gw, l.HostIf}, {chute, "eth0"}} {
				checkTxOff(t, h.host, h.ifname)
			}
			nettest.Exec(t, gw, "busybox", "ping", "-c", "1", "-W", "2", addr.Addr().String())
			nettest.Exec(t, chute, "busybox", "ping", "-c", "1", "-W", "2", gwAddr.Addr().String())
			checkTCP(t, gw, chute, addr.Addr(), gwAddr.Addr())
		})
	}
}

// linkState is what the test reads back about a link.
type linkState struct{ hostIndex, chuteIndex int }

func readLink(t *testing.T, gw, chute *nettest.Host, l netconf.Link) linkState {
	t.Helper()
	host := linkIn(t, gw, l.HostIf)
	eth0 := linkIn(t, chute, "eth0")
	h := handleIn(t, chute)

	if eth0.Type() != "veth" || host.Type() != "veth" {
		t.Fatalf("types %s and %s, want veth", host.Type(), eth0.Type())
	}
	if eth0.Attrs().ParentIndex != host.Attrs().Index {
		t.Errorf("eth0's peer index %d, host end is %d", eth0.Attrs().ParentIndex, host.Attrs().Index)
	}
	if !bytes.Equal(eth0.Attrs().HardwareAddr, l.MAC) {
		t.Errorf("eth0 MAC %s, want %s", eth0.Attrs().HardwareAddr, l.MAC)
	}
	for _, lk := range []netlink.Link{host, eth0} {
		if lk.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is down", lk.Attrs().Name)
		}
		if l.MTU != 0 && lk.Attrs().MTU != l.MTU {
			t.Errorf("%s MTU %d, want %d", lk.Attrs().Name, lk.Attrs().MTU, l.MTU)
		}
	}
	addrs, err := h.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != l.Addr.String() {
		t.Errorf("eth0 addresses %v, want only %s", addrs, l.Addr)
	}
	routes, err := h.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var defaults []string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			defaults = append(defaults, r.Gw.String())
		}
	}
	if len(defaults) != 1 || defaults[0] != l.Gateway.String() {
		t.Errorf("default routes via %v, want one via %s", defaults, l.Gateway)
	}
	return linkState{host.Attrs().Index, eth0.Attrs().Index}
}

// checkTxOff reads the offload state back with the ethtool program, an
// independent judge of what netconf did through the ioctl.
func checkTxOff(t *testing.T, h *nettest.Host, ifname string) {
	t.Helper()
	out := nettest.Exec(t, h, "ethtool", "-k", ifname)
	for _, feature := range []string{"tx-checksumming", "tx-checksum-ip-generic"} {
		m := regexp.MustCompile(`(?m)^\s*` + feature + `: (\w+)`).FindStringSubmatch(out)
		if m == nil || m[1] != "off" {
			t.Errorf("%s on %s: %v, want off\n%s", feature, ifname, m, out)
		}
	}
}

// checkTCP connects from the gateway to a server in the chute, checks the
// source address the server saw, and pushes data through and back.
func checkTCP(t *testing.T, gw, chute *nettest.Host, chuteAddr, gwAddr netip.Addr) {
	t.Helper()
	srv := nettest.StartTCPServer(t, chute, net.JoinHostPort(chuteAddr.String(), "0"))
	c, err := nettest.Dial(t, gw, srv.String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := bytes.Repeat([]byte("paradrop"), 64<<10) // larger than any segment
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	peer, echoed, _ := bytes.Cut(got, []byte("\n"))
	if host, _, _ := strings.Cut(string(peer), ":"); host != gwAddr.String() {
		t.Errorf("server saw client %s, want %s", peer, gwAddr)
	}
	if !bytes.Equal(echoed, payload) {
		t.Errorf("echoed %d bytes, want %d identical ones", len(echoed), len(payload))
	}
}

func TestDeleteLink(t *testing.T) {
	nettest.Require(t)
	gw, chute := nettest.NewHost(t), nettest.NewHost(t)
	l := netconf.Link{
		HostIf: "pd-deltest", NetNS: chute.NetNS,
		Addr: netip.MustParsePrefix("10.131.0.11/24"),
	}
	inNS(t, gw, func() error { return netconf.EnsureLink(l) })
	for range 2 { // the second call finds nothing and must not fail
		inNS(t, gw, func() error { return netconf.DeleteLink(l.HostIf) })
		for _, c := range []struct {
			h   *nettest.Host
			if_ string
		}{{gw, l.HostIf}, {chute, "eth0"}} {
			if _, err := handleIn(t, c.h).LinkByName(c.if_); err == nil {
				t.Errorf("%s still exists in %s", c.if_, c.h.Name)
			}
		}
	}
	// Not a veth: refused, so a wrong name cannot remove a real interface.
	if err := netconf.InNetNS(gw.NetNS, func() error { return netconf.DeleteLink("lo") }); err == nil {
		t.Error("DeleteLink(lo) succeeded")
	}
	linkIn(t, gw, "lo")
}

func TestEnsureLinkRejects(t *testing.T) {
	good := netconf.Link{
		HostIf: "pd-x", NetNS: "/nonexistent",
		Addr: netip.MustParsePrefix("10.131.0.11/24"), Gateway: netip.MustParseAddr("10.131.0.1"),
	}
	cases := []struct {
		name string
		edit func(l *netconf.Link)
	}{
		{"long host name", func(l *netconf.Link) { l.HostIf = "pd-0123456789abc" }},
		{"no netns", func(l *netconf.Link) { l.NetNS = "" }},
		{"IPv6 address", func(l *netconf.Link) { l.Addr = netip.MustParsePrefix("2001:db8::1/64") }},
		{"gateway off subnet", func(l *netconf.Link) { l.Gateway = netip.MustParseAddr("10.132.0.1") }},
		{"short MAC", func(l *netconf.Link) { l.MAC = net.HardwareAddr{2, 0, 0} }},
		{"missing netns", func(l *netconf.Link) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := good
			tc.edit(&l)
			if err := netconf.EnsureLink(l); err == nil || !strings.Contains(err.Error(), `ensure link "`) {
				t.Errorf("EnsureLink(%+v) = %v, want an error naming the link", l, err)
			}
		})
	}
}

func inNS(t *testing.T, h *nettest.Host, fn func() error) {
	t.Helper()
	if err := netconf.InNetNS(h.NetNS, fn); err != nil {
		t.Fatal(err)
	}
}

func handleIn(t *testing.T, h *nettest.Host) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(h.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

func linkIn(t *testing.T, h *nettest.Host, name string) netlink.Link {
	t.Helper()
	l, err := handleIn(t, h).LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, h.Name, err)
	}
	return l
}

// A chute's IPv6: its ULA and, with a delegated prefix, a global address
// and a default route via the gateway; taking them away (the gateway lost
// its prefix) removes the global address and the route, and nothing else.
func TestEnsureLinkIPv6(t *testing.T) {
	nettest.Require(t, "ip")
	gw, chute := nettest.NewHost(t), nettest.NewHost(t)
	l := netconf.Link{
		HostIf: netconf.HostIfFor(chute.Name), NetNS: chute.NetNS, MAC: netconf.MACFor(chute.Name),
		Addr: netip.MustParsePrefix("10.131.0.11/24"), Gateway: netip.MustParseAddr("10.131.0.1"),
		Addr6:    netip.MustParsePrefix("fd70:6472:6f70::b/64"),
		Global6:  netip.MustParsePrefix("2001:db8:6400::b/64"),
		Gateway6: netip.MustParseAddr("fd70:6472:6f70::1"),
	}
	state := func() (addrs, route string) {
		addrs = nettest.Exec(t, chute, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		return addrs, nettest.Exec(t, chute, "ip", "-6", "route", "show", "default")
	}
	for range 2 {
		inNS(t, gw, func() error { return netconf.EnsureLink(l) })
		addrs, route := state()
		for _, a := range []string{"fd70:6472:6f70::b/64", "2001:db8:6400::b/64"} {
			if !strings.Contains(addrs, a) {
				t.Errorf("eth0 lacks %s: %q", a, addrs)
			}
		}
		if !strings.Contains(route, "via fd70:6472:6f70::1 dev eth0") || strings.Count(route, "default") != 1 {
			t.Errorf("IPv6 default route: %q, want one via fd70:6472:6f70::1", route)
		}
	}
	l.Global6, l.Gateway6 = netip.Prefix{}, netip.Addr{}
	inNS(t, gw, func() error { return netconf.EnsureLink(l) })
	addrs, route := state()
	if strings.Contains(addrs, "2001:db8:6400::b") || !strings.Contains(addrs, "fd70:6472:6f70::b/64") {
		t.Errorf("eth0's IPv6 without the global address: %q", addrs)
	}
	if strings.TrimSpace(route) != "" {
		t.Errorf("IPv6 default route left: %q", route)
	}
	for _, bad := range []netconf.Link{
		{Global6: netip.MustParsePrefix("2001:db8:6400::b/64")},                                              // no Addr6
		{Addr6: l.Addr6, Gateway6: netip.MustParseAddr("2001:db8:6400::1")},                                  // outside Addr6
		{Addr6: l.Addr6, Global6: netip.MustParsePrefix("198.51.100.7/24"), Gateway6: l.Addr6.Addr().Next()}, // not IPv6
	} {
		bad.HostIf, bad.NetNS, bad.Addr = l.HostIf, l.NetNS, l.Addr
		if err := netconf.InNetNS(gw.NetNS, func() error { return netconf.EnsureLink(bad) }); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
