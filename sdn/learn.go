package sdn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// LAN hosts are learned from their ARP: the first ARP packet of a MAC on a
// LAN port (or on another port than it was learned on) is copied to the
// controller, which records the port and re-derives the flows. Table 5
// then sends what goes to a learned host out of its port alone; a host not
// learned yet is reached on every LAN port, as a learning switch floods.

// maxLANHosts bounds the learned hosts: beyond it new ones are flooded to,
// and a LAN host forging source MACs costs the gateway nothing more.
const maxLANHosts = 1024

// learnMeter rate-limits the ARP copied to the controller (what it does
// not yet know). Meter 1 is no chute's: chute ids start at 1, their
// meters at 2.
const (
	learnMeter     = 1
	learnRateKbps  = 64 // about 100 ARP packets a second
	learnMaxLen    = 64 // Ethernet and ARP headers are 42 bytes
	learnBurstKbit = 16
)

// lanFlows are table 5, and table 0's LAN ARP, which copies what it has
// not learned to the controller.
func lanFlows(b builder, t topology) {
	b.add(tableLAN, 0, "LAN hosts not learned: every LAN port", nil, apply(output(t.LANPorts...)...))
	macs := make([]string, 0, len(t.LANHosts))
	for mac := range t.LANHosts {
		macs = append(macs, mac)
	}
	slices.Sort(macs)
	for _, s := range macs {
		mac, _ := net.ParseMAC(s)
		port := t.LANHosts[s]
		b.add(tableLAN, 100, fmt.Sprintf("LAN host %s learned on port %d", s, port),
			[]ofp.OXM{ofp.FieldEthDst.MAC(mac)}, apply(&ofp.ActionOutput{Port: port}))
		// Its ARP from an address it claimed before is only counted
		// (hosts.go); from a new one it is copied, so the address is
		// learned.
		for _, ip := range t.LANHostIPs[s] {
			c := b.add(tableClassify, 110, fmt.Sprintf("LAN ARP from %s at %s, learned on port %d", s, ip, port),
				[]ofp.OXM{inPort(port), eth(ethARP), ofp.FieldEthSrc.MAC(mac), ofp.FieldARPSPA.Addr(ip)}, gotoTable(tableARP))
			b.d.Hosts[c] = s
		}
	}
	if len(t.LANPorts) > 0 {
		b.d.Meters = append(b.d.Meters, controller.Meter{ID: learnMeter, RateKbps: learnRateKbps, BurstKb: learnBurstKbit})
	}
	for _, p := range t.LANPorts {
		b.add(tableClassify, 100, "LAN ARP (its sender learned by the controller)", []ofp.OXM{inPort(p), eth(ethARP)},
			&ofp.InstructionMeter{MeterID: learnMeter},
			apply(&ofp.ActionOutput{Port: ofp.PortController, MaxLen: learnMaxLen}), gotoTable(tableARP))
	}
}

// learn records that the packet-in's sender is on its LAN port, at the
// address its ARP claims, and now; it re-derives the flows if that is
// news.
func (n *Network) learn(pi *ofp.PacketIn) {
	port, ok := pi.InPort()
	if !ok || len(pi.Data) < 12 {
		return
	}
	mac := net.HardwareAddr(pi.Data[6:12])
	if mac[0]&1 != 0 { // a group address is no host's
		return
	}
	ip := arpSender(pi.Data)
	n.mu.Lock()
	news := n.note(mac, port, ip, n.now())
	n.mu.Unlock()
	if news {
		// The packet-in runs on the controller's reading goroutine, which
		// must not wait for the switch.
		select {
		case n.learned <- struct{}{}:
		default:
		}
	}
}

// note records mac seen on LAN port at ip (invalid: none) at now, and
// says whether the flows change. A host new to a full table replaces the
// one seen least recently if that one is inactive. Called with n.mu held;
// derive's input maps are replaced, never changed in place.
func (n *Network) note(mac net.HardwareAddr, port uint32, ip netip.Addr, now time.Time) bool {
	key := mac.String()
	_, named := n.cfg.LANHosts[key]
	if !slices.Contains(n.topo.LANPorts, port) || n.ours(mac) {
		return false
	}
	known, had := n.topo.LANHosts[key]
	if named && known != port { // the operator put it elsewhere
		return false
	}
	news := false
	if !had {
		if len(n.topo.LANHosts) >= maxLANHosts {
			old, ok := n.evictable(now)
			if !ok {
				return false
			}
			n.forget(old)
		}
	}
	if known != port {
		hosts := make(map[string]uint32, len(n.topo.LANHosts)+1)
		for k, v := range n.topo.LANHosts {
			hosts[k] = v
		}
		hosts[key] = port
		n.topo.LANHosts = hosts
		news = true
	}
	s := n.seen[key]
	if s == nil {
		if n.seen == nil {
			n.seen = map[string]*seenHost{}
		}
		s = &seenHost{first: now}
		n.seen[key] = s
	}
	s.last = now
	if ips := n.topo.LANHostIPs[key]; ip.IsValid() && !slices.Contains(ips, ip) && now.Sub(s.ipAt) >= hostIPEvery {
		n.setHostIPs(key, withIP(ips, ip))
		s.ipAt = now
		news = true
	}
	return news
}

// ours says mac is the gateway's or a chute's, which a LAN host may claim
// in its ARP but is never taken to be on the LAN. Called with n.mu held.
func (n *Network) ours(mac net.HardwareAddr) bool {
	if slices.Equal(mac, n.topo.GatewayMAC) {
		return true
	}
	for _, c := range n.chutes {
		if slices.Equal(mac, c.MAC) {
			return true
		}
	}
	return false
}

// checkLANHosts refuses a named LAN host that is not a MAC or whose port
// is not a LAN port.
func checkLANHosts(cfg Config) error {
	for mac, port := range cfg.LANHosts {
		hw, err := net.ParseMAC(mac)
		switch {
		case err != nil || len(hw) != 6 || hw.String() != mac:
			return fmt.Errorf("LAN host %q is not a MAC like 02:00:00:00:00:01", mac)
		case !slices.Contains(cfg.LANPorts, port):
			return fmt.Errorf("LAN host %s: %q is not a LAN port", mac, port)
		}
	}
	return nil
}

// withNamed is learned with the operator's named hosts (names, the LAN
// ports' names and numbers in the same order) put on their ports: a copy.
func withNamed(learned map[string]uint32, named map[string]string, names []string, ports []uint32) map[string]uint32 {
	if len(named) == 0 {
		return learned
	}
	out := make(map[string]uint32, len(learned)+len(named))
	for k, v := range learned {
		out[k] = v
	}
	for mac, name := range named {
		if i := slices.Index(names, name); i >= 0 && i < len(ports) {
			out[mac] = ports[i]
		}
	}
	return out
}

// applyLearned installs the flows of newly learned hosts, coalescing
// bursts.
func (n *Network) applyLearned(ctx context.Context) {
	defer n.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.learned:
		}
		n.opMu.Lock()
		n.setDesired()
		n.opMu.Unlock()
		// Waiting for the switch without opMu: a switch that died meanwhile
		// (ovs-vswitchd killed) is started again by the repair loop, which
		// takes opMu; holding it here, both waited for ever.
		if err := n.ctl.Sync(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logf("sdn: learned LAN hosts: program the bridge: %v", err)
		}
	}
}
