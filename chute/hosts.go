package chute

import (
	"time"

	"paradrop/sdn"
)

// Host is a LAN device the gateway sees, as the API and the USP agent
// show it.
type Host struct {
	MAC string `json:"mac"`
	// IPs are the IPv4 addresses it claimed, latest last.
	IPs []string `json:"ips"`
	// Port is the LAN interface it is on.
	Port      string    `json:"port"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Active: seen within the network's host window.
	Active bool `json:"active"`
}

// Hosts are the LAN devices the gateway sees, by MAC; none without a
// network.
func (m *Manager) Hosts() []Host {
	if m.cfg.Network == nil {
		return []Host{}
	}
	return hostsOf(m.cfg.Network.Hosts())
}

// hostsOf converts the network's hosts (sorted by MAC), the one place
// they become text.
func hostsOf(hs []sdn.Host) []Host {
	out := make([]Host, 0, len(hs))
	for _, h := range hs {
		ips := make([]string, 0, len(h.IPs))
		for _, ip := range h.IPs {
			ips = append(ips, ip.String())
		}
		out = append(out, Host{MAC: h.MAC.String(), IPs: ips, Port: h.Port, FirstSeen: h.FirstSeen.UTC(),
			LastSeen: h.LastSeen.UTC(), Active: h.Active})
	}
	return out
}
