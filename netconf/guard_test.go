package netconf_test

import (
	"net/netip"
	"strings"
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

// The guard over a delegated prefix: the chutes' global /64 is forwarded
// out of the WAN interface, routed (the internet host sees the chute's
// own address), and its answers come back; their ULA is not forwarded
// even there, the global /64 out of no other interface (a LAN), and the
// internet host opens nothing to a chute. The same gateway without the
// guard, forwarding everything, is the control.
func TestGuardIPv6WAN(t *testing.T) {
	nettest.Require(t, "busybox", "ip")
	gw, chute, inet, lan := nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t)
	ula, global := netip.MustParsePrefix("fd70:6472:6f70::/64"), netip.MustParsePrefix("2001:db8:6400::/64")
	chuteULA, chuteGlobal := netip.MustParseAddr("fd70:6472:6f70::a"), netip.MustParseAddr("2001:db8:6400::a")
	gwULA, gwGlobal := netip.MustParseAddr("fd70:6472:6f70::1"), netip.MustParseAddr("2001:db8:6400::1")
	wanGW6, inet6 := netip.MustParseAddr("2001:db8:ffff::1"), netip.MustParseAddr("2001:db8:ffff::5")
	lanGW6, lan6 := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::20")
	nettest.Veth(t, nettest.End{Host: chute, If: "eth0"}, nettest.End{Host: gw, If: "pdbrG"})
	nettest.Veth(t, nettest.End{Host: inet, If: "eth0"}, nettest.End{Host: gw, If: "wan0"})
	nettest.Veth(t, nettest.End{Host: lan, If: "eth0"}, nettest.End{Host: gw, If: "lan0"})
	ip6 := func(h *nettest.Host, argv ...string) {
		t.Helper()
		nettest.Exec(t, h, append([]string{"ip", "-6"}, argv...)...)
	}
	addr := func(h *nettest.Host, dev string, a netip.Addr) {
		ip6(h, "addr", "add", netip.PrefixFrom(a, 64).String(), "dev", dev, "nodad")
	}
	addr(chute, "eth0", chuteULA)
	addr(chute, "eth0", chuteGlobal)
	ip6(chute, "route", "add", "default", "via", gwULA.String())
	addr(gw, "pdbrG", gwULA)
	addr(gw, "pdbrG", gwGlobal)
	addr(gw, "wan0", wanGW6)
	addr(gw, "lan0", lanGW6)
	addr(inet, "eth0", inet6)
	addr(lan, "eth0", lan6)
	for _, p := range []netip.Prefix{ula, global} {
		ip6(inet, "route", "add", p.String(), "via", wanGW6.String())
		ip6(lan, "route", "add", p.String(), "via", lanGW6.String())
	}
	inNS(t, gw, netconf.EnableForwarding6)
	srv := nettest.StartTCPServer(t, inet, netip.AddrPortFrom(inet6, 80).String()).String()
	chuteSrv := nettest.StartTCPServer(t, chute, netip.AddrPortFrom(chuteGlobal, 81).String()).String()
	pingsFrom := func(from *nettest.Host, src, to netip.Addr) bool {
		_, err := nettest.Run(from, "busybox", "ping", "-c", "2", "-W", "1", "-I", src.String(), to.String())
		return err == nil
	}

	deadline := time.Now().Add(10 * time.Second)
	for !pingsFrom(chute, chuteGlobal, inet6) {
		if time.Now().After(deadline) {
			t.Fatal("control: the chute does not reach the internet host without the guard")
		}
	}
	// What the guard must stop.
	stopped := []struct {
		what     string
		from     *nettest.Host
		src, dst netip.Addr
	}{
		{"the chute's ULA is forwarded to the WAN", chute, chuteULA, inet6},
		{"the chute's global address is forwarded to the LAN", chute, chuteGlobal, lan6},
		{"the internet host's unsolicited IPv6 is forwarded to the chute", inet, inet6, chuteGlobal},
		{"the LAN's unsolicited IPv6 is forwarded to the chute", lan, lan6, chuteGlobal},
	}
	for _, c := range stopped {
		if !pingsFrom(c.from, c.src, c.dst) {
			t.Fatalf("control: without the guard, it is not so that %s", c.what)
		}
	}
	if _, err := nettest.PeerAddr(t, inet, chuteSrv, 3*time.Second); err != nil {
		t.Fatalf("control: the internet host cannot connect to the chute without the guard: %v", err)
	}

	inNS(t, gw, func() error {
		return netconf.EnsureGuard("pd_guard_test", netconf.Guard{Bridge: "pdbrG", Chutes: []netip.Prefix{ula, global},
			WAN: "wan0", WANFrom: []netip.Prefix{global}})
	})
	if !pingsFrom(chute, chuteGlobal, inet6) {
		t.Error("the chute's global address does not reach the internet host through the guard")
	}
	seen, err := nettest.PeerAddr(t, chute, srv, 3*time.Second)
	if err != nil {
		t.Errorf("the chute cannot connect to the internet host through the guard: %v", err)
	} else if want := chuteGlobal.String(); !strings.HasPrefix(seen, "["+want+"]:") {
		t.Errorf("the internet host saw %s, want the chute's own global address %s (routed, no NAT)", seen, want)
	}
	for _, c := range stopped {
		if pingsFrom(c.from, c.src, c.dst) {
			t.Error(c.what + " through the guard")
		}
	}
	if _, err := nettest.PeerAddr(t, inet, chuteSrv, time.Second); err == nil {
		t.Error("the internet host opened a connection to the chute through the guard")
	}
	if !pingsFrom(chute, chuteGlobal, gwULA) {
		t.Error("the chute cannot ping the gateway through the guard")
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
