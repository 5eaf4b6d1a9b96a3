package netconf_test

import (
	"strings"
	"testing"

	"paradrop/netconf"
)

func TestNames(t *testing.T) {
	cases := []struct{ a, b string }{
		{"web", "web2"},
		{"a-very-long-chute-name-far-beyond-fifteen-bytes", "a-very-long-chute-name-far-beyond-fifteen-bytez"},
		{"", " "},
	}
	for _, tc := range cases {
		t.Run(tc.a, func(t *testing.T) {
			mac := netconf.MACFor(tc.a)
			if len(mac) != 6 || mac[0] != 0x02 {
				t.Errorf("MACFor(%q) = %s, want 02:xx:xx:xx:xx:xx (local, unicast)", tc.a, mac)
			}
			if again := netconf.MACFor(tc.a); again.String() != mac.String() {
				t.Errorf("MACFor(%q) not stable: %s then %s", tc.a, mac, again)
			}
			if other := netconf.MACFor(tc.b); other.String() == mac.String() {
				t.Errorf("MACFor(%q) = MACFor(%q) = %s", tc.a, tc.b, mac)
			}

			ifname := netconf.HostIfFor(tc.a)
			if len(ifname) != 15 || !strings.HasPrefix(ifname, "pd-") {
				t.Errorf("HostIfFor(%q) = %q, want pd- and 12 hex digits", tc.a, ifname)
			}
			if netconf.HostIfFor(tc.a) != ifname {
				t.Errorf("HostIfFor(%q) not stable", tc.a)
			}
			if netconf.HostIfFor(tc.b) == ifname {
				t.Errorf("HostIfFor(%q) = HostIfFor(%q) = %q", tc.a, tc.b, ifname)
			}
		})
	}
}
