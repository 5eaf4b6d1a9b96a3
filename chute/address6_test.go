package chute

import (
	"net/netip"
	"testing"
)

// A chute's info names its IPv6 addresses, ULA and global, at its IPv4
// host index; no global address without a delegated prefix.
func TestInfoIPv6Addresses(t *testing.T) {
	cfg := Config{Subnet: netip.MustParsePrefix("10.131.0.0/24"), Subnet6: netip.MustParsePrefix("fd70:6472:6f70::/64")}
	m := &Manager{cfg: cfg}
	if in := m.withIPv6(Info{IP: "10.131.0.11"}); in.IPv6 != "fd70:6472:6f70::b" || in.IPv6Global != "" {
		t.Errorf("without a delegated prefix: ipv6 %q, ipv6_global %q", in.IPv6, in.IPv6Global)
	}
	cfg.Global6 = netip.MustParsePrefix("2001:db8:6400::/64")
	m = &Manager{cfg: cfg}
	if in := m.withIPv6(Info{IP: "10.131.0.11"}); in.IPv6 != "fd70:6472:6f70::b" || in.IPv6Global != "2001:db8:6400::b" {
		t.Errorf("with a delegated prefix: ipv6 %q, ipv6_global %q", in.IPv6, in.IPv6Global)
	}
	if in := m.withIPv6(Info{}); in.IPv6 != "" || in.IPv6Global != "" {
		t.Errorf("without an address: %+v", in)
	}
}
