package chute

import (
	"fmt"
	"net/netip"
	"strings"

	"paradrop/chute/sandbox"
	"paradrop/chutedns"
)

// gatewayName is the name the gateway answers to in a chute's /etc/hosts,
// as its resolver does (chutedns's Local names).
const gatewayName = "gateway.paradrop"

// etcFiles are the chute's /etc/resolv.conf and /etc/hosts when it is on
// the chutes' network: the resolver at the gateway's address, and the
// names a chute needs without asking it (localhost, its own, the
// gateway's). A chute without the network gets none: its namespace has
// loopback only, and its image's /etc stays as it is.
func (m *Manager) etcFiles(name string) ([]sandbox.EtcFile, error) {
	if m.cfg.Network == nil || !m.cfg.Subnet.IsValid() {
		return nil, nil
	}
	e, err := m.entry(name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	ipS := e.rec.IP
	m.mu.Unlock()
	ip, err := netip.ParseAddr(ipS)
	if err != nil {
		return nil, fmt.Errorf("chute %q has no address in the chute subnet: %w", name, err)
	}
	// The gateway's internal port takes the subnet's first address (sdn.Open).
	gw := m.cfg.Subnet.Addr().Next()
	var hosts strings.Builder
	hosts.WriteString("# written by paradrop\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	six := m.withIPv6(Info{IP: ipS})
	for _, a := range []string{six.IPv6, six.IPv6Global} {
		if a != "" {
			fmt.Fprintf(&hosts, "%s\t%s\n", a, name)
		}
	}
	fmt.Fprintf(&hosts, "%s\t%s\n", gw, gatewayName)
	return []sandbox.EtcFile{
		{Name: "resolv.conf", Data: chutedns.ResolvConf(gw)},
		{Name: "hosts", Data: []byte(hosts.String())},
	}, nil
}
