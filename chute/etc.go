package chute

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"paradrop/chute/manifest"

	"paradrop/chute/sandbox"
	"paradrop/chutedns"
)

// gatewayName is the name the gateway answers to in a chute's /etc/hosts,
// as its resolver does (chutedns's Local names).
const gatewayName = "gateway.paradrop"

// etcFiles are the chute's /etc/resolv.conf and /etc/hosts when it is on
// the chutes' network: the resolver at the gateway's address, and the
// names it may reach without asking it (localhost, its own, the
// gateway's, and its mutual peers' as they are when it starts, man
// being the manifest it runs; the resolver answers for peers that come
// later). A chute without the network gets none: its namespace has
// loopback only, and its image's /etc stays as it is.
func (m *Manager) etcFiles(name string, man *manifest.Manifest) ([]sandbox.EtcFile, error) {
	if m.cfg.Network == nil || !m.cfg.Subnet.IsValid() {
		return nil, nil
	}
	e, err := m.entry(name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	ipS := e.rec.IP
	peers := map[string]string{}
	for _, p := range man.Net.Peers {
		if pe, ok := m.chutes[p]; ok && p != name && pe.rec.Manifest != nil && slices.Contains(pe.rec.Manifest.Net.Peers, name) {
			peers[p] = pe.rec.IP
		}
	}
	m.mu.Unlock()
	ip, err := netip.ParseAddr(ipS)
	if err != nil {
		return nil, fmt.Errorf("chute %q has no address in the chute subnet: %w", name, err)
	}
	// The gateway's internal port takes the subnet's first address (sdn.Open).
	gw := m.cfg.Subnet.Addr().Next()
	var hosts strings.Builder
	hosts.WriteString("# written by paradrop\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	host := func(name, ipS string) {
		if _, err := netip.ParseAddr(ipS); err != nil {
			return
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ipS, name)
		if ip6 := m.withIPv6(Info{IP: ipS}).IPv6; ip6 != "" {
			fmt.Fprintf(&hosts, "%s\t%s\n", ip6, name)
		}
	}
	host(name, ip.String())
	// Its own global address too; peers reach each other at their ULAs.
	if g := m.withIPv6(Info{IP: ip.String()}).IPv6Global; g != "" {
		fmt.Fprintf(&hosts, "%s\t%s\n", g, name)
	}
	fmt.Fprintf(&hosts, "%s\t%s\n", gw, gatewayName)
	for _, p := range slices.Sorted(maps.Keys(peers)) {
		host(p, peers[p])
	}
	return []sandbox.EtcFile{
		{Name: "resolv.conf", Data: chutedns.ResolvConf(gw)},
		{Name: "hosts", Data: []byte(hosts.String())},
	}, nil
}
