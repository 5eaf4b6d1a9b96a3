package netconf_test

import (
	"net/netip"
	"testing"
	"time"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// The guard covers the chutes' IPv6 subnet as it does the IPv4 one: a
// chute's IPv6 that reaches the gateway's routing is not forwarded (no
// WAN prefix), nothing unsolicited is forwarded to it, and it still pings
// the gateway. A gateway forwarding IPv6 without the guard is the
// control: the same pings pass.
func TestGuardIPv6(t *testing.T) {
	nettest.Require(t, "busybox", "ip")
	gw, chute, cloud := nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t)
	subnet6 := netip.MustParsePrefix("fd70:6472:6f70::/64")
	chute6, gw6 := netip.MustParseAddr("fd70:6472:6f70::a"), netip.MustParseAddr("fd70:6472:6f70::1")
	wanGW6, cloud6 := netip.MustParseAddr("2001:db8:ffff::1"), netip.MustParseAddr("2001:db8:ffff::5")
	nettest.Veth(t, nettest.End{Host: chute, If: "eth0"}, nettest.End{Host: gw, If: "pdbrG"})
	nettest.Veth(t, nettest.End{Host: cloud, If: "eth0"}, nettest.End{Host: gw, If: "wan0"})
	ip6 := func(h *nettest.Host, argv ...string) {
		t.Helper()
		nettest.Exec(t, h, append([]string{"ip", "-6"}, argv...)...)
	}
	ip6(chute, "addr", "add", netip.PrefixFrom(chute6, 64).String(), "dev", "eth0", "nodad")
	ip6(chute, "route", "add", "default", "via", gw6.String())
	ip6(gw, "addr", "add", netip.PrefixFrom(gw6, 64).String(), "dev", "pdbrG", "nodad")
	ip6(gw, "addr", "add", netip.PrefixFrom(wanGW6, 64).String(), "dev", "wan0", "nodad")
	ip6(cloud, "addr", "add", netip.PrefixFrom(cloud6, 64).String(), "dev", "eth0", "nodad")
	ip6(cloud, "route", "add", subnet6.String(), "via", wanGW6.String())
	nettest.Exec(t, gw, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

	deadline := time.Now().Add(10 * time.Second)
	for !pings(chute, cloud6) {
		if time.Now().After(deadline) {
			t.Fatal("control: the chute does not reach the cloud over IPv6 without the guard")
		}
	}
	if !pings(cloud, chute6) {
		t.Fatal("control: the cloud does not reach the chute over IPv6 without the guard")
	}

	inNS(t, gw, func() error {
		return netconf.EnsureGuard("pd_guard_test", netconf.Guard{Bridge: "pdbrG", Chutes: []netip.Prefix{subnet6}, WAN: "wan0"})
	})
	if pings(chute, cloud6) {
		t.Error("the chute's IPv6 is forwarded to the WAN through the guard")
	}
	if pings(cloud, chute6) {
		t.Error("the cloud's unsolicited IPv6 is forwarded to the chute through the guard")
	}
	if !pings(chute, gw6) {
		t.Error("the chute cannot ping the gateway over IPv6 through the guard")
	}
}

func pings(from *nettest.Host, to netip.Addr) bool {
	_, err := nettest.Run(from, "busybox", "ping", "-c", "2", "-W", "1", to.String())
	return err == nil
}

// A guard of mixed families or without a chute prefix is refused before
// anything is written.
func TestGuardRefusesBadInput(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("10.131.0.0/24"), netip.MustParsePrefix("fd70:6472:6f70::/64")
	for _, g := range []netconf.Guard{
		{Bridge: "pdbr0"},
		{Bridge: "", Chutes: []netip.Prefix{v4}},
		{Bridge: "pdbr0", Chutes: []netip.Prefix{v4, v6}},
		{Bridge: "pdbr0", Chutes: []netip.Prefix{v6}, WAN: "wan0", WANFrom: []netip.Prefix{v4}},
		{Bridge: "pdbr0", Chutes: []netip.Prefix{v6}, API: netip.MustParseAddrPort("10.131.0.1:8081")},
		{Bridge: "pdbr0", Chutes: []netip.Prefix{v4}, WAN: "a-name-much-too-long"},
	} {
		if err := netconf.EnsureGuard("pd_guard_bad", g); err == nil {
			t.Errorf("%+v: accepted", g)
		}
	}
}
