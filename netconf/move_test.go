package netconf_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// TestMoveNetNS: a chute's network, as the daemon and sdn leave it (eth0
// with its MAC and address, a default route, an on-link route of ours),
// arrives whole in another namespace, which the old path then pins; the
// peer still reaches it.
func TestMoveNetNS(t *testing.T) {
	nettest.Require(t, "ping", "ip")
	from, to, peer := nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t)
	mac, _ := net.ParseMAC("02:00:00:00:7d:02")
	nettest.Veth(t, nettest.End{Host: peer, If: "p0", Addr: netip.MustParsePrefix("192.0.2.1/24")},
		nettest.End{Host: from, If: "eth0", Addr: netip.MustParsePrefix("192.0.2.2/24"), MAC: mac})
	from.Route(t, netip.Prefix{}, netip.MustParseAddr("192.0.2.1"))
	nettest.Exec(t, from, "ip", "route", "add", "198.51.100.0/24", "dev", "eth0", "scope", "link", "proto", "static")
	before := nettest.Exec(t, from, "ip", "-4", "route")
	// One the chute made itself (a bridge, which could not even move).
	nettest.Exec(t, from, "ip", "link", "add", "own0", "type", "bridge")

	if err := netconf.MoveNetNS(from.NetNS, to.NetNS); err != nil {
		t.Fatal(err)
	}
	var a, b unix.Stat_t
	if err := unix.Stat(from.NetNS, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(to.NetNS, &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("%s does not pin the namespace moved to", from.NetNS)
	}
	link := nettest.Exec(t, to, "ip", "-o", "link", "show", "eth0")
	if !strings.Contains(link, "state UP") || !strings.Contains(link, mac.String()) {
		t.Errorf("eth0 moved: %s", link)
	}
	if addr := nettest.Exec(t, to, "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(addr, "192.0.2.2/24") {
		t.Errorf("eth0's address lost: %s", addr)
	}
	if after := nettest.Exec(t, to, "ip", "-4", "route"); after != before {
		t.Errorf("routes after the move:\n%s\nbefore:\n%s", after, before)
	}
	if lo := nettest.Exec(t, to, "ip", "-o", "link", "show", "lo"); !strings.Contains(lo, "LOOPBACK,UP") {
		t.Errorf("lo: %s", lo)
	}
	if out, err := nettest.Run(to, "ip", "link", "show", "own0"); err == nil {
		t.Errorf("a link the chute made moved too: %s", out)
	}
	nettest.Exec(t, peer, "ping", "-c", "1", "-W", "2", "192.0.2.2")
}
