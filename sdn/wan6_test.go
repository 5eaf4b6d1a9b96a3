package sdn

import (
	"net/netip"
	"testing"
)

// A delegated prefix gives the chutes its first /64; one that is not a
// global unicast IPv6 prefix of at most /64, or overlaps the chutes' ULA,
// is refused.
func TestPrefix6(t *testing.T) {
	ula := netip.MustParsePrefix("fd70:6472:6f70::/64")
	for _, tt := range []struct {
		prefix, global string // global "" for refused
	}{
		{"2001:db8:6400::/56", "2001:db8:6400::/64"},
		{"2001:db8:6400:ab::/64", "2001:db8:6400:ab::/64"},
		{"2001:db8:6400:ab::7/60", "2001:db8:6400:a0::/64"},
		{"2001:db8:6400::/80", ""},
		{"fd70:6472:6f70::/48", ""},
		{"fd00:1::/56", ""},
		{"fe80::/64", ""},
		{"ff02::/64", ""},
		{"::ffff:10.0.0.0/104", ""},
		{"198.51.100.0/24", ""},
	} {
		p := netip.MustParsePrefix(tt.prefix)
		err := checkPrefix6(p, ula)
		if (err == nil) != (tt.global != "") {
			t.Errorf("%s: %v", tt.prefix, err)
		}
		if tt.global != "" && globalSubnet6(p).String() != tt.global {
			t.Errorf("%s: chutes' /64 %s, want %s", tt.prefix, globalSubnet6(p), tt.global)
		}
	}
	if err := checkPrefix6(netip.Prefix{}, ula); err != nil || globalSubnet6(netip.Prefix{}).IsValid() {
		t.Errorf("no prefix: %v, %s", err, globalSubnet6(netip.Prefix{}))
	}
}
