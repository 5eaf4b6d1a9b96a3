package sdn

import (
	"net/netip"

	"paradrop/netconf"
)

// ensureGuard has netconf make the nftables guard of the chutes' two
// families (tables `ip TABLE` and `ip6 TABLE`): chute traffic reaches the
// gateway itself only for ICMP, DNS and, with api valid, the chutes' API;
// it is forwarded out of wanIf alone ("" = nowhere), IPv4 from subnet
// (masqueraded) and IPv6 from global6 (routed; invalid: none), never from
// the ULA subnet6; only replies are forwarded to chutes. api and api6 are
// the chutes' API over IPv4 and IPv6. With IPv6 to forward, it turns IPv6
// forwarding on.
func ensureGuard(table, bridge string, subnet, subnet6, global6 netip.Prefix, wanIf string, api, api6 netip.AddrPort) error {
	if err := netconf.EnsureGuard(table, netconf.Guard{Bridge: bridge, Chutes: []netip.Prefix{subnet},
		WAN: wanIf, WANFrom: []netip.Prefix{subnet}, API: api}); err != nil {
		return err
	}
	g6 := netconf.Guard{Bridge: bridge, Chutes: []netip.Prefix{subnet6}, WAN: wanIf, API: api6}
	if global6.IsValid() {
		g6.Chutes = append(g6.Chutes, global6)
		g6.WANFrom = []netip.Prefix{global6}
	}
	if err := netconf.EnsureGuard(table, g6); err != nil {
		return err
	}
	if wanIf != "" && global6.IsValid() {
		return netconf.EnableForwarding6()
	}
	return nil
}
