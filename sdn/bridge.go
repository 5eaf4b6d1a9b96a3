package sdn

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/sdn/ovs"
	"paradrop/sdn/ovsdb"
)

// gatewayMACFor derives a stable MAC for the gateway's bridge port from
// seed (locally administered, unicast): the same gateway keeps it across
// restarts, so chutes' and LAN hosts' neighbour caches stay right.
func gatewayMACFor(seed string) net.HardwareAddr {
	h := sha256.Sum256([]byte("paradrop gateway MAC " + seed))
	mac := net.HardwareAddr(h[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

func (n *Network) datapathType() string {
	if ovs.HasKernelModule() {
		return "system"
	}
	return "netdev"
}

// setupBridge makes the bridge, its internal port's addresses and the LAN
// ports what the configuration says and records the port numbers and the
// gateway's MAC. It is idempotent: the repair loop calls it again.
func (n *Network) setupBridge(ctx context.Context, target string) error {
	n.mu.Lock()
	db := n.db
	n.mu.Unlock()
	cfg := n.cfg
	// The gateway's MAC is in the flows, so it is pinned: left to OVS, it
	// is the lowest universal MAC among the bridge's ports, and a LAN
	// port added below (a real NIC) would change it under them.
	mac := gatewayMACFor(machineID() + " " + cfg.DatapathID + " " + cfg.Bridge)
	err := db.EnsureBridge(ctx, ovsdb.BridgeConfig{
		Name: cfg.Bridge, DatapathType: n.datapathType(), DatapathID: cfg.DatapathID,
		Protocols: []string{"OpenFlow13"}, FailMode: "secure", DisableInBand: true, Controller: target, HWAddr: mac,
	})
	if err != nil {
		return err
	}
	if _, err := db.OFPort(ctx, cfg.Bridge); err != nil {
		return fmt.Errorf("bridge's internal port: %w", err)
	}
	// Until OVS has given it the MAC, the device has the one it was
	// created with, and the gateway's packets would carry that.
	if err := db.WaitInterfaceMAC(ctx, cfg.Bridge, mac); err != nil {
		return err
	}
	addrs := []netip.Prefix{netip.PrefixFrom(n.gateway, cfg.Subnet.Bits()), netip.PrefixFrom(n.gateway6, cfg.Subnet6.Bits())}
	for _, a := range []netip.Prefix{cfg.LANAddr, cfg.LANAddr6} {
		if a.IsValid() {
			addrs = append(addrs, a)
		}
	}
	if n.global6.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(gateway6(n.global6), n.global6.Bits()))
	}
	if err := n.inGW(func() error {
		for _, a := range addrs {
			if err := netconf.SetAddr(cfg.Bridge, a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	netdev := n.datapathType() == "netdev"
	// The userspace datapath needs full checksums from the kernel's side
	// of every port (see netconf.DisableTxOffload).
	if netdev {
		if err := netconf.DisableTxOffload(cfg.Bridge, cfg.NetNS); err != nil {
			return err
		}
	}
	var lanPorts []uint32
	for _, name := range cfg.LANPorts {
		if err := db.AddPort(ctx, cfg.Bridge, name, "", nil); err != nil {
			return err
		}
		if netdev {
			if err := netconf.DisableTxOffload(name, cfg.NetNS); err != nil {
				return err
			}
			// The userspace datapath leaves the port's frames to the
			// kernel too, which would answer LAN hosts' ARP for the
			// gateway's addresses with the port's own MAC: their traffic
			// would then reach the gateway around the switch (a LAN
			// host's first connection to an exposed port was refused by
			// the gateway's kernel that way).
			if err := n.inGW(func() error { return arpOff(name) }); err != nil {
				return fmt.Errorf("LAN port %s: %w", name, err)
			}
		}
		p, err := db.OFPort(ctx, name)
		if err != nil {
			return fmt.Errorf("LAN port: %w", err)
		}
		lanPorts = append(lanPorts, p)
	}
	topo := topology{Subnet: cfg.Subnet, Gateway: n.gateway, LANAddr: cfg.LANAddr, GatewayMAC: mac, LANPorts: lanPorts, APIPort: n.apiAddr().Port(),
		Subnet6: cfg.Subnet6, Gateway6: n.gateway6, Global6: n.global6, LANAddr6: cfg.LANAddr6}

	n.mu.Lock()
	chutes := make([]*attached, 0, len(n.chutes))
	for _, c := range n.chutes {
		chutes = append(chutes, c)
	}
	n.mu.Unlock()
	ports := map[string]uint32{}
	for _, c := range chutes {
		hostIf := netconf.HostIfFor(c.Name)
		if err := db.AddPort(ctx, cfg.Bridge, hostIf, "", map[string]string{chuteIDKey: c.Name}); err != nil {
			return err
		}
		p, err := db.OFPort(ctx, hostIf)
		if err != nil {
			return fmt.Errorf("chute %s: %w", c.Name, err)
		}
		ports[c.Name] = p
	}
	n.mu.Lock()
	if slices.Equal(n.topo.LANPorts, lanPorts) {
		topo.LANHosts = n.topo.LANHosts // still on the ports they were learned on
		topo.LANHostIPs = n.topo.LANHostIPs
	}
	topo.LANHosts = withNamed(topo.LANHosts, cfg.LANHosts, cfg.LANPorts, lanPorts)
	n.topo = topo
	for name, p := range ports {
		if c, ok := n.chutes[name]; ok {
			c.Port = p
		}
	}
	n.mu.Unlock()
	return nil
}

// arpOff stops the kernel resolving and answering ARP on interface name.
func arpOff(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetARPOff(l); err != nil {
		return fmt.Errorf("arp off: %w", err)
	}
	return nil
}

// repairLoop brings the bridge back after Open vSwitch restarts: it
// restarts our own OVS if it died, redials OVSDB, re-creates the internal
// port's addresses (a new vswitchd makes a new device) and refreshes port
// numbers and flows. The controller re-installs the flows by itself once
// the switch reconnects.
//
// Each tick first looks whether anything the repair mends has changed: the
// OVSDB connection lost, the switch disconnected or connected again since
// the last repair (ovs-vswitchd died or restarted), a LAN port's device
// gone or new, or the bridge's internal device not the one the last
// repair left or without the gateway's address. Only then, and every
// fullRepairEvery ticks anyway, does it repair: a repair every tick (OVSDB
// monitors dumping every interface, a connection to our own OVS, the
// flows derived again) was a quarter of an idle daemon's CPU with 30
// chutes.
func (n *Network) repairLoop(ctx context.Context, target string) {
	defer n.done.Done()
	t := time.NewTicker(n.cfg.RepairInterval)
	defer t.Stop()
	left := n.bridgeSeen() // what Open set up
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ticks++; ticks < fullRepairEvery && n.bridgeIntact(left) {
			continue
		}
		if err := n.repair(ctx, target); err != nil {
			if ctx.Err() == nil {
				n.cfg.Logf("sdn: repair: %v", err)
			}
			continue
		}
		ticks = 0
		left = n.bridgeSeen()
	}
}

// fullRepairEvery is how many repair ticks may pass without a repair when
// nothing looks changed: what the quick look cannot see (the bridge's
// record in OVSDB changed by hand, other than a port deleted) is still
// mended, within five minutes. A repair every minute was an eighth of an
// idle daemon's CPU with 30 chutes. A variable for tests.
var fullRepairEvery = 60

// bridgeState is what a repair leaves for the next ticks to compare with.
type bridgeState struct {
	index    int    // of the bridge's internal device; 0 if it was missing
	lan      []int  // of the LAN ports' devices, 0 for one missing
	sessions uint64 // the controller's count of switch connections
}

func (n *Network) bridgeSeen() bridgeState {
	st := bridgeState{sessions: n.ctl.Sessions(), lan: make([]int, len(n.cfg.LANPorts))}
	n.inGW(func() error {
		st.index = linkIndex(n.cfg.Bridge)
		for i, name := range n.cfg.LANPorts {
			st.lan[i] = linkIndex(name)
		}
		return nil
	})
	return st
}

// linkIndex is the index of the device called name, 0 if there is none.
func linkIndex(name string) int {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0
	}
	return l.Attrs().Index
}

// bridgeIntact reports whether nothing a repair mends changed since seen:
// the OVSDB connection up, the switch connected without reconnecting, the
// LAN ports' devices the same (one plugged in again is a new device), and
// the bridge's internal device the same, holding the gateway's address.
func (n *Network) bridgeIntact(seen bridgeState) bool {
	n.mu.Lock()
	db := n.db
	n.mu.Unlock()
	if seen.index == 0 || db.Err() != nil || !n.ctl.Connected() || n.ctl.Sessions() != seen.sessions || !n.portsIntact() {
		return false
	}
	intact := false
	n.inGW(func() error {
		for i, name := range n.cfg.LANPorts {
			if linkIndex(name) != seen.lan[i] {
				return nil
			}
		}
		l, err := netlink.LinkByName(n.cfg.Bridge)
		if err != nil || l.Attrs().Index != seen.index {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == n.gateway {
				intact = true
			}
		}
		return err
	})
	return intact
}

// portsIntact reports whether the switch has every chute's port with the
// number the flows use, as its PORT_STATUS messages told the controller: a
// chute's port deleted by hand (ovs-vsctl del-port) is mended at the next
// tick, not at the next periodic repair.
func (n *Network) portsIntact() bool {
	ports := n.ctl.Ports()
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, c := range n.chutes {
		if p, ok := ports[netconf.HostIfFor(name)]; !ok || p != c.Port {
			return false
		}
	}
	return true
}

func (n *Network) repair(ctx context.Context, target string) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 4*n.cfg.RepairInterval)
	defer cancel()
	if n.ovsDir != "" {
		if err := n.inGW(func() error { _, err := ovs.Start(ctx, n.ovsDir); return err }); err != nil {
			return err
		}
	}
	n.mu.Lock()
	db := n.db
	n.mu.Unlock()
	if db.Err() != nil {
		fresh, err := ovsdb.Dial(ctx, n.daemon.DBSocket())
		if err != nil {
			return err
		}
		db.Close()
		n.mu.Lock()
		n.db = fresh
		n.mu.Unlock()
	}
	if err := n.setupBridge(ctx, target); err != nil {
		return err
	}
	if n.setDesired() {
		n.cfg.Logf("sdn: bridge %s changed (restarted Open vSwitch?); flows updated", n.cfg.Bridge)
	}
	return nil
}
