package sdn

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"paradrop/sdn/ofp"
)

// A LAN host is active while the gateway has seen it within the host
// window. It is seen by its ARP: the first ARP of each of its addresses is
// copied to the controller (learn.go, metered), later ones are counted by
// its flows, and every window/3 the gateway asks each host for its latest
// address with a unicast ARP request, whose answer those flows count. A
// host that left answers nothing and turns inactive within a window; one
// that stays quiet but present answers the probes. The cost is bounded by
// the learned table (maxLANHosts): one probe per host and one flow
// statistics request per round.

// DefaultHostWindow is how recently a LAN host must have been seen to be
// active.
const DefaultHostWindow = 30 * time.Second

// maxHostIPs bounds the addresses kept per host (the latest ones): a host
// claiming addresses one after another keeps replacing its own.
const maxHostIPs = 4

// hostIPEvery is how often a host may have a new address learned: each
// one re-derives the flows, which a host cycling through addresses must
// not make the gateway do at the rate of its ARP.
const hostIPEvery = time.Second

// Host is a LAN host the gateway has seen.
type Host struct {
	MAC net.HardwareAddr
	// IPs are the IPv4 addresses it claimed in its ARP, latest last.
	IPs []netip.Addr
	// Port is the LAN interface it was seen on.
	Port string
	// FirstSeen and LastSeen are when it was seen first and last; Active
	// says LastSeen is within the host window.
	FirstSeen, LastSeen time.Time
	Active              bool
}

// seenHost is the activity of a LAN host.
type seenHost struct {
	first, last time.Time
	ipAt        time.Time // when an address was last learned
	// packets is what its ARP flows counted at the last poll.
	packets uint64
}

// hostWindow is the configured window, or the default.
func (n *Network) hostWindow() time.Duration {
	if n.cfg.HostWindow > 0 {
		return n.cfg.HostWindow
	}
	return DefaultHostWindow
}

func (n *Network) now() time.Time {
	if n.clock != nil {
		return n.clock()
	}
	return time.Now()
}

// Hosts returns the LAN hosts the gateway has seen, sorted by MAC.
func (n *Network) Hosts() []Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	now, window := n.now(), n.hostWindow()
	out := make([]Host, 0, len(n.seen))
	for mac, s := range n.seen {
		port, ok := n.topo.LANHosts[mac]
		if !ok { // its LAN port is gone
			continue
		}
		hw, _ := net.ParseMAC(mac)
		h := Host{MAC: hw, IPs: slices.Clone(n.topo.LANHostIPs[mac]), FirstSeen: s.first, LastSeen: s.last,
			Active: now.Sub(s.last) < window}
		if i := slices.Index(n.topo.LANPorts, port); i >= 0 && i < len(n.cfg.LANPorts) {
			h.Port = n.cfg.LANPorts[i]
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Host) int { return strings.Compare(a.MAC.String(), b.MAC.String()) })
	return out
}

// arpSender is the sender address of the ARP frame data, invalid when it
// is no ARP or claims no usable address (a duplicate address probe's
// 0.0.0.0, a broadcast or multicast one).
func arpSender(data []byte) netip.Addr {
	if len(data) < 42 || binary.BigEndian.Uint16(data[12:14]) != ethARP ||
		binary.BigEndian.Uint16(data[16:18]) != ethIPv4 || data[18] != 6 || data[19] != 4 {
		return netip.Addr{}
	}
	a := netip.AddrFrom4([4]byte(data[28:32]))
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}
	}
	return a
}

// withIP is ips with ip last, the oldest dropped beyond maxHostIPs; ips
// itself is not changed.
func withIP(ips []netip.Addr, ip netip.Addr) []netip.Addr {
	out := slices.DeleteFunc(slices.Clone(ips), func(a netip.Addr) bool { return a == ip })
	out = append(out, ip)
	if len(out) > maxHostIPs {
		out = out[len(out)-maxHostIPs:]
	}
	return out
}

// evictable is the learned host seen least recently, if it is inactive:
// the one a new host may replace when the table is full. Called with n.mu
// held.
func (n *Network) evictable(now time.Time) (string, bool) {
	var oldest string
	var at time.Time
	for mac, s := range n.seen {
		if _, named := n.cfg.LANHosts[mac]; named {
			continue
		}
		if oldest == "" || s.last.Before(at) {
			oldest, at = mac, s.last
		}
	}
	if oldest == "" || now.Sub(at) < n.hostWindow() {
		return "", false
	}
	return oldest, true
}

// forget drops a learned host. Called with n.mu held; the maps are
// replaced, never changed in place.
func (n *Network) forget(mac string) {
	hosts := make(map[string]uint32, len(n.topo.LANHosts))
	for k, v := range n.topo.LANHosts {
		if k != mac {
			hosts[k] = v
		}
	}
	n.topo.LANHosts = hosts
	n.setHostIPs(mac, nil)
	delete(n.seen, mac)
}

// setHostIPs sets mac's addresses (none: deletes them) in a copy of the
// map. Called with n.mu held.
func (n *Network) setHostIPs(mac string, ips []netip.Addr) {
	m := make(map[string][]netip.Addr, len(n.topo.LANHostIPs)+1)
	for k, v := range n.topo.LANHostIPs {
		m[k] = v
	}
	if len(ips) == 0 {
		delete(m, mac)
	} else {
		m[mac] = ips
	}
	n.topo.LANHostIPs = m
}

// watchHosts polls the hosts' ARP counters and probes them every third of
// the window until ctx ends.
func (n *Network) watchHosts(ctx context.Context) {
	defer n.done.Done()
	tick := time.NewTicker(n.hostWindow() / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := n.pollHosts(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logf("sdn: LAN hosts: %v", err)
		}
		n.probeHosts(ctx)
	}
}

// pollHosts marks seen the hosts whose ARP flows counted packets since the
// last poll.
func (n *Network) pollHosts(ctx context.Context) error {
	n.mu.Lock()
	d := n.last
	n.mu.Unlock()
	if d == nil || len(d.Hosts) == 0 {
		return nil
	}
	stats, err := n.ctl.FlowStats(ctx, 0, cookieMask)
	if err != nil {
		return err
	}
	counts := map[string]uint64{}
	for _, s := range stats {
		if mac, ok := d.Hosts[s.Cookie]; ok {
			counts[mac] += s.Packets
		}
	}
	n.mu.Lock()
	n.counted(counts, n.now())
	n.mu.Unlock()
	return nil
}

// counted takes the hosts' ARP packet counts: a host whose count grew was
// seen at now; a count that fell (its flows were replaced) is the new
// baseline. Called with n.mu held.
func (n *Network) counted(counts map[string]uint64, now time.Time) {
	for mac, c := range counts {
		s := n.seen[mac]
		if s == nil {
			continue
		}
		if c > s.packets {
			s.last = now
		}
		s.packets = c
	}
}

// probeHosts asks each host with an address for its latest one.
func (n *Network) probeHosts(ctx context.Context) {
	n.mu.Lock()
	type probe struct {
		port  uint32
		frame []byte
	}
	var probes []probe
	var spa netip.Addr
	if n.topo.LANAddr.IsValid() {
		spa = n.topo.LANAddr.Addr()
	}
	for mac, ips := range n.topo.LANHostIPs {
		port, ok := n.topo.LANHosts[mac]
		if !ok || len(ips) == 0 {
			continue
		}
		hw, _ := net.ParseMAC(mac)
		probes = append(probes, probe{port, arpRequest(n.topo.GatewayMAC, spa, hw, ips[len(ips)-1])})
	}
	n.mu.Unlock()
	for _, p := range probes {
		err := n.ctl.Send(ctx, &ofp.PacketOut{BufferID: ofp.NoBuffer, InPort: ofp.PortController,
			Actions: []ofp.Action{&ofp.ActionOutput{Port: p.port}}, Data: p.frame})
		if err != nil {
			if ctx.Err() == nil {
				n.cfg.Logf("sdn: probing LAN hosts: %v", err)
			}
			return
		}
	}
}

// arpRequest is the Ethernet frame of an ARP request from (sha, spa) for
// tpa, sent to dst alone; spa may be invalid (0.0.0.0, a gateway without
// a LAN address), which hosts answer too (RFC 5227's probe).
func arpRequest(sha net.HardwareAddr, spa netip.Addr, dst net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], dst)
	copy(b[6:12], sha)
	binary.BigEndian.PutUint16(b[12:14], ethARP)
	binary.BigEndian.PutUint16(b[14:16], 1) // Ethernet
	binary.BigEndian.PutUint16(b[16:18], ethIPv4)
	b[18], b[19] = 6, 4
	binary.BigEndian.PutUint16(b[20:22], 1) // request
	copy(b[22:28], sha)
	if spa.Is4() {
		a := spa.As4()
		copy(b[28:32], a[:])
	}
	t := tpa.As4()
	copy(b[38:42], t[:])
	return b
}
