package sdn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	v4 := hostPrefix("198.51.100.20")
	for _, tt := range []struct {
		name string
		p    Policy
		want string // "" for accepted
	}{
		{"IPv4 everywhere", Policy{WAN: true, LAN: []LANRule{{Prefix: v4, Ports: []uint16{80}}, {MAC: mustMAC("02:00:00:00:00:09")}},
			Expose: []Expose{{80, 8080, TCP}}, Redirect: []Redirect{{netip.MustParseAddrPort("203.0.113.5:80"), 8081, TCP}}}, ""},
		{"IPv6 LAN host", Policy{LAN: []LANRule{{Prefix: hostPrefix("2001:db8::5")}}}, ""},
		{"IPv6 LAN prefix", Policy{LAN: []LANRule{{Prefix: v4}, {Prefix: netip.MustParsePrefix("2001:db8::/64"), Ports: []uint16{80}}}}, ""},
		{"IPv4-mapped LAN host", Policy{LAN: []LANRule{{Prefix: hostPrefix("::ffff:198.51.100.20")}}}, "net.lan[0]: ::ffff:198.51.100.20 is an IPv4-mapped"},
		{"IPv6 redirect", Policy{Redirect: []Redirect{{netip.MustParseAddrPort("[2001:db8::1]:443"), 8443, TCP}}}, ""},
		{"IPv4-mapped redirect", Policy{Redirect: []Redirect{{netip.MustParseAddrPort("[::ffff:203.0.113.5]:80"), 8081, TCP}}}, "net.redirect[0].to: [::ffff:203.0.113.5]:80 is an IPv4-mapped"},
		{"both address and MAC", Policy{LAN: []LANRule{{Prefix: v4, MAC: mustMAC("02:00:00:00:00:09")}}}, "net.lan[0]: needs exactly one"},
		{"neither", Policy{LAN: []LANRule{{}}}, "net.lan[0]: needs exactly one"},
		{"long MAC", Policy{LAN: []LANRule{{MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}}}}, "is not an Ethernet address"},
		{"port 0", Policy{LAN: []LANRule{{Prefix: v4, Ports: []uint16{0}}}}, "net.lan[0].ports[0]: port 0"},
		{"ICMP expose", Policy{Expose: []Expose{{80, 8080, 1}}}, "net.expose[0].proto: proto 1 is not tcp or udp"},
	} {
		checkRefusal(t, tt.name, tt.p.Check(), tt.want)
	}
}

// The network refuses such a policy itself, whoever calls Attach, and
// what its configuration cannot give: an IPv6 redirect needs an IPv6 LAN
// address (the chute resolves the users it answers in its prefix), and
// may not name the gateway's or the chutes' own addresses, global ones
// (from the delegated prefix) included.
func TestAttachRefusesUnenforceable(t *testing.T) {
	redirect := func(to string) Policy {
		return Policy{Redirect: []Redirect{{netip.MustParseAddrPort(to), 8443, TCP}}}
	}
	for _, tt := range []struct {
		name     string
		lanAddr6 netip.Prefix
		p        Policy
		want     string // "" for accepted
	}{
		{"IPv4-mapped redirect", lanGW6, redirect("[::ffff:203.0.113.5]:80"), "IPv4-mapped"},
		{"IPv6 redirect without an IPv6 LAN address", netip.Prefix{}, redirect("[2001:db8::1]:443"),
			"net.redirect[0].to: [2001:db8::1]:443 is IPv6 and this gateway has no IPv6 LAN address (serve --lan-addr6)"},
		{"IPv6 redirect", lanGW6, redirect("[2001:db8::1]:443"), ""},
		{"IPv6 redirect to a chute address", lanGW6, redirect("[fd70:6472:6f70::b]:443"), "net.redirect[0].to: [fd70:6472:6f70::b]:443 is the gateway's or the chutes' own"},
		{"IPv6 redirect to the gateway's LAN address", lanGW6, redirect("[2001:db8:1::1]:443"), "is the gateway's or the chutes' own"},
		{"IPv6 redirect to a chute's global address", lanGW6, redirect("[2001:db8:6400::b]:443"), "net.redirect[0].to: [2001:db8:6400::b]:443 is the gateway's or the chutes' own"},
		{"IPv6 redirect elsewhere in the delegated prefix", lanGW6, redirect("[2001:db8:6400:1::5]:443"), ""},
		{"IPv4 redirect without an IPv6 LAN address", netip.Prefix{}, redirect("203.0.113.5:80"), ""},
		{"expose without an IPv6 LAN address (IPv4 only)", netip.Prefix{}, Policy{Expose: []Expose{{80, 8080, TCP}}}, ""},
		{"no access", netip.Prefix{}, Policy{}, ""},
	} {
		n := &Network{cfg: Config{Subnet: testTopo.Subnet, Subnet6: simSubnet6, Prefix6: simPrefix6, LANAddr6: tt.lanAddr6}, gateway: testTopo.Gateway,
			global6: globalSubnet6(simPrefix6), chutes: map[string]*attached{}}
		c := mkChute("web", 10, 5, tt.p, Bandwidth{}).Chute
		c.NetNS = "/run/netns/web"
		err := n.check(c, false)
		checkRefusal(t, tt.name, err, tt.want)
		if err2 := n.Enforceable(c.Net); fmt.Sprint(err2) != fmt.Sprint(err) {
			t.Errorf("%s: Enforceable says %v, check %v", tt.name, err2, err)
		}
	}
}

// checkRefusal wants err to be nil for want "", else ErrUnenforceable
// saying want.
func checkRefusal(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v", name, err)
	case want != "" && (!errors.Is(err, ErrUnenforceable) || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v, want ErrUnenforceable saying %q", name, err, want)
	}
}
