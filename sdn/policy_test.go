package sdn

import (
	"errors"
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
		{"IPv6 redirect", Policy{Redirect: []Redirect{{netip.MustParseAddrPort("[2001:db8::1]:443"), 8443, TCP}}}, "net.redirect[0].to: [2001:db8::1]:443 is IPv6"},
		{"both address and MAC", Policy{LAN: []LANRule{{Prefix: v4, MAC: mustMAC("02:00:00:00:00:09")}}}, "net.lan[0]: needs exactly one"},
		{"neither", Policy{LAN: []LANRule{{}}}, "net.lan[0]: needs exactly one"},
		{"long MAC", Policy{LAN: []LANRule{{MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}}}}, "is not an Ethernet address"},
		{"port 0", Policy{LAN: []LANRule{{Prefix: v4, Ports: []uint16{0}}}}, "net.lan[0].ports[0]: port 0"},
		{"ICMP expose", Policy{Expose: []Expose{{80, 8080, 1}}}, "net.expose[0].proto: proto 1 is not tcp or udp"},
	} {
		err := tt.p.Check()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnenforceable) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrUnenforceable saying %q", tt.name, err, tt.want)
		}
	}
}

// The network refuses such a policy itself, whoever calls Attach.
func TestAttachRefusesUnenforceable(t *testing.T) {
	n := &Network{cfg: Config{Subnet: testTopo.Subnet}, gateway: testTopo.Gateway, chutes: map[string]*attached{}}
	c := mkChute("web", 10, 5, Policy{Redirect: []Redirect{{netip.MustParseAddrPort("[2001:db8::1]:443"), 8443, TCP}}}, Bandwidth{}).Chute
	c.NetNS = "/run/netns/web"
	if err := n.check(c, false); !errors.Is(err, ErrUnenforceable) {
		t.Errorf("check of an IPv6 redirect: %v", err)
	}
	c.Net = Policy{}
	if err := n.check(c, false); err != nil {
		t.Errorf("check of no access: %v", err)
	}
}
