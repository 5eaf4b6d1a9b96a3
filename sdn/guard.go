package sdn

import (
	"net/netip"

	"paradrop/netconf"
)

// ensureGuard has netconf make the nftables guard of the chutes' two
// families (tables `ip TABLE` and `ip6 TABLE`): chute traffic reaches the
// gateway itself only for ICMP, DNS and, with api valid, the chutes' API;
// it is forwarded out of wanIf alone ("" = nowhere), IPv4 from subnet
// (masqueraded), and no IPv6 yet; only replies are forwarded to chutes.
func ensureGuard(table, bridge string, subnet, subnet6 netip.Prefix, wanIf string, api netip.AddrPort) error {
	if err := netconf.EnsureGuard(table, netconf.Guard{Bridge: bridge, Chutes: []netip.Prefix{subnet},
		WAN: wanIf, WANFrom: []netip.Prefix{subnet}, API: api}); err != nil {
		return err
	}
	return netconf.EnsureGuard(table, netconf.Guard{Bridge: bridge, Chutes: []netip.Prefix{subnet6}})
}
