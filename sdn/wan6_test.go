package sdn

import (
	"net/netip"
	"strings"
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

// The gateway's IPv6 LAN address may be anywhere but in the chutes' /64s:
// elsewhere in the delegated prefix (the LAN's /64 of it, say) is fine,
// the chutes' global /64 or a prefix around it is not, nor is an address
// that is no global or unique local one with its prefix.
func TestLANAddr6(t *testing.T) {
	ula := netip.MustParsePrefix("fd70:6472:6f70::/64")
	global := globalSubnet6(netip.MustParsePrefix("2001:db8:6400::/56"))
	for _, tt := range []struct {
		addr string
		want string // "" for accepted
	}{
		{"2001:db8:1::1/64", ""},
		{"fd00:1::1/64", ""},
		{"2001:db8:6400:1::1/64", ""},
		{"2001:db8:6400::1/64", "overlaps the chutes' 2001:db8:6400::/64"},
		{"2001:db8:6400:1::1/56", "overlaps the chutes' 2001:db8:6400::/64"},
		{"fd70:6472:6f70::99/64", "overlaps the chutes' fd70:6472:6f70::/64"},
		{"2001:db8:1::1/128", "is not a global or unique local"},
		{"fe80::1/64", "is not a global or unique local"},
		{"::ffff:198.51.100.1/120", "is not a global or unique local"},
		{"198.51.100.1/24", "is not a global or unique local"},
	} {
		err := checkLANAddr6(netip.MustParsePrefix(tt.addr), ula, global)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.addr, err, tt.want)
		}
	}
	if err := checkLANAddr6(netip.Prefix{}, ula, netip.Prefix{}); err != nil {
		t.Errorf("no IPv6 LAN address: %v", err)
	}
}
