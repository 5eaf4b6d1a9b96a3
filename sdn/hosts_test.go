package sdn

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/sdn/ofp"
)

// hostsNet is a network without a switch, on a clock the test moves.
func hostsNet(now *time.Time) *Network {
	return &Network{learned: make(chan struct{}, 1), seen: map[string]*seenHost{}, clock: func() time.Time { return *now },
		cfg:  Config{LANPorts: []string{"lan1", "lan2"}, HostWindow: 30 * time.Second},
		topo: topology{LANPorts: []uint32{5, 6}, GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}}
}

func arpFrom(port uint32, mac net.HardwareAddr, spa netip.Addr) *ofp.PacketIn {
	var gw net.HardwareAddr = []byte{2, 0, 0, 0, 0, 1}
	data := arpRequest(mac, spa, gw, netip.MustParseAddr("198.51.100.1"))
	return &ofp.PacketIn{Match: ofp.Match{Fields: []ofp.OXM{inPort(port)}}, Data: data}
}

// A host is active for a window after it was last seen, by its copied ARP
// or by its ARP flows' counters growing; a counter that falls (flows
// replaced) is no sighting. Its addresses are the latest maxHostIPs it
// claimed; a duplicate address probe's 0.0.0.0 is none.
func TestHostActivity(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	now := t0
	n := hostsNet(&now)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	n.learn(arpFrom(6, mac, netip.Addr{})) // DAD probe
	ip := netip.MustParseAddr("198.51.100.20")
	n.learn(arpFrom(6, mac, ip))
	check := func(at time.Duration, active bool, last time.Duration) {
		t.Helper()
		now = t0.Add(at)
		hs := n.Hosts()
		if len(hs) != 1 {
			t.Fatalf("at %v: hosts %+v, want one", at, hs)
		}
		h := hs[0]
		if h.MAC.String() != mac.String() || !slices.Equal(h.IPs, []netip.Addr{ip}) || h.Port != "lan2" ||
			!h.FirstSeen.Equal(t0) || !h.LastSeen.Equal(t0.Add(last)) || h.Active != active {
			t.Errorf("at %v: %+v, want %s at %s on lan2, first seen %v, last %v, active %v", at, h, mac, ip, t0, t0.Add(last), active)
		}
	}
	check(29*time.Second, true, 0)
	check(30*time.Second, false, 0)
	key := mac.String()
	n.mu.Lock()
	n.counted(map[string]uint64{key: 3, "02:00:00:00:00:99": 7}, now) // a host not seen is not made up
	n.mu.Unlock()
	check(31*time.Second, true, 30*time.Second)
	n.mu.Lock()
	n.counted(map[string]uint64{key: 3}, now) // nothing more: not seen
	n.counted(map[string]uint64{key: 1}, now) // flows replaced: a new baseline
	n.mu.Unlock()
	check(61*time.Second, false, 30*time.Second)
	n.mu.Lock()
	n.counted(map[string]uint64{key: 2}, now)
	n.mu.Unlock()
	check(62*time.Second, true, 61*time.Second)

	for i := range maxHostIPs + 2 {
		now = now.Add(hostIPEvery)
		n.learn(arpFrom(6, mac, netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)})))
	}
	if got := n.Hosts()[0].IPs; len(got) != maxHostIPs || got[maxHostIPs-1] != netip.MustParseAddr("198.51.100.105") {
		t.Errorf("addresses %v, want the latest %d", got, maxHostIPs)
	}
	// Addresses claimed faster than one a second: seen, not learned (each
	// would re-derive the flows).
	<-n.learned
	n.learn(arpFrom(6, mac, netip.MustParseAddr("198.51.100.200")))
	if got := n.Hosts()[0]; slices.Contains(got.IPs, netip.MustParseAddr("198.51.100.200")) || !got.LastSeen.Equal(now) {
		t.Errorf("an address within %v of the last learned: %+v", hostIPEvery, got)
	}
	select {
	case <-n.learned:
		t.Error("news signalled for an address not learned")
	default:
	}
}

// A full table takes a new host in place of the one seen least recently
// once that one is inactive, never in place of an active one nor of a
// host the operator named.
func TestHostEviction(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	now := t0
	n := hostsNet(&now)
	named := "02:00:00:00:00:0b"
	n.cfg.LANHosts = map[string]string{named: "lan1"}
	n.topo.LANHosts = map[string]uint32{named: 5}
	hw, _ := net.ParseMAC(named)
	n.learn(arpFrom(5, hw, netip.MustParseAddr("198.51.100.2")))
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{2, 1, 0, 0, byte(i >> 8), byte(i)} }
	for i := range maxLANHosts - 1 {
		now = t0.Add(time.Duration(i) * time.Millisecond)
		n.learn(arpFrom(5, mac(i), netip.Addr{}))
	}
	<-n.learned
	if len(n.topo.LANHosts) != maxLANHosts {
		t.Fatalf("%d hosts, want the table full (%d)", len(n.topo.LANHosts), maxLANHosts)
	}
	stranger := net.HardwareAddr{2, 2, 0, 0, 0, 1}
	now = t0.Add(20 * time.Second)
	n.learn(arpFrom(5, stranger, netip.Addr{}))
	if _, ok := n.topo.LANHosts[stranger.String()]; ok {
		t.Fatal("a new host replaced an active one")
	}
	select {
	case <-n.learned:
		t.Error("news signalled for a host not learned")
	default:
	}
	now = t0.Add(30*time.Second + time.Millisecond) // mac(0) and the named host are inactive
	n.learn(arpFrom(5, stranger, netip.Addr{}))
	if _, ok := n.topo.LANHosts[stranger.String()]; !ok || len(n.topo.LANHosts) != maxLANHosts {
		t.Fatalf("the stranger is not learned in place of an inactive host (%d hosts)", len(n.topo.LANHosts))
	}
	if _, ok := n.topo.LANHosts[mac(0).String()]; ok {
		t.Error("the host seen least recently was kept")
	}
	if _, ok := n.seen[mac(0).String()]; ok {
		t.Error("the evicted host's activity was kept")
	}
	if _, ok := n.topo.LANHosts[named]; !ok {
		t.Error("the named host was evicted")
	}
	if len(n.seen) != maxLANHosts {
		t.Errorf("%d hosts' activity kept, want %d", len(n.seen), maxLANHosts)
	}
}

// arpSender reads the sender address of ARP alone, and no address that is
// none: a probe's 0.0.0.0, broadcast, multicast; arpRequest writes what it
// reads.
func TestARPSender(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	ip := netip.MustParseAddr("203.0.113.9")
	good := arpRequest(mac, ip, mac, ip)
	ipv4 := slices.Clone(good)
	ipv4[12], ipv4[13] = 0x08, 0x00
	for _, tt := range []struct {
		name string
		data []byte
		want netip.Addr
	}{
		{"an ARP request", good, ip},
		{"a probe", arpRequest(mac, netip.Addr{}, mac, ip), netip.Addr{}},
		{"broadcast", arpRequest(mac, netip.MustParseAddr("255.255.255.255"), mac, ip), netip.Addr{}},
		{"multicast", arpRequest(mac, netip.MustParseAddr("224.0.0.1"), mac, ip), netip.Addr{}},
		{"IPv4, not ARP", ipv4, netip.Addr{}},
		{"truncated", good[:41], netip.Addr{}},
	} {
		if got := arpSender(tt.data); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A LAN host that talks once is seen active at its address on its port,
// stays active while quiet (it answers the gateway's probes), and turns
// inactive once it has left the LAN (its interface down).
func TestLANHostsActive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root and Open vSwitch; TestHostActivity runs without")
	}
	const window = 3 * time.Second
	tb := newTestbed(t, func(c *Config) { c.HostWindow = window })
	mac := macOf(t, tb.lan1)
	find := func() (Host, bool) {
		for _, h := range tb.n.Hosts() {
			if h.MAC.String() == mac.String() {
				return h, true
			}
		}
		return Host{}, false
	}
	if h, ok := find(); ok {
		t.Fatalf("lan1 seen before it said anything: %+v", h)
	}
	if err := ping(tb.lan1, lanGW.Addr()); err != nil {
		t.Fatalf("lan1 cannot ping the gateway: %v", err)
	}
	waitHost := func(what string, ok func(Host) bool) Host {
		t.Helper()
		deadline := time.Now().Add(4 * window)
		for {
			h, found := find()
			if found && ok(h) {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("lan1 not %s: %+v (found %v)", what, h, found)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	h := waitHost("active at its address", func(h Host) bool {
		return h.Active && slices.Contains(h.IPs, lan1Addr) && h.Port == "lan1"
	})
	first := h.LastSeen
	// Quiet but present, past what the kernels' own neighbour probes
	// (DELAY, then PROBE after 5 s) would show.
	time.Sleep(4 * window)
	h = waitHost("active while quiet", func(h Host) bool { return h.Active && h.LastSeen.After(first.Add(3*window)) })

	if err := netconf.InNetNS(tb.lan1.NetNS, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(l)
	}); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	h = waitHost("inactive once gone", func(h Host) bool { return !h.Active })
	if took := time.Since(left); took > window+window/3+2*time.Second {
		t.Errorf("seen inactive %v after it left, window %v", took, window)
	}
	if h.Port != "lan1" || !slices.Contains(h.IPs, lan1Addr) {
		t.Errorf("an inactive host lost what was known of it: %+v", h)
	}
}

// Whatever a LAN host sends the controller, learning takes at most one
// address of it, an IPv4 one that is some host's, and never panics.
func FuzzLearnARP(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	f.Add(arpRequest(mac, netip.MustParseAddr("198.51.100.20"), mac, netip.MustParseAddr("198.51.100.1")))
	f.Add(arpRequest(mac, netip.Addr{}, mac, netip.MustParseAddr("198.51.100.1")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
		n := hostsNet(&now)
		n.learn(&ofp.PacketIn{Match: ofp.Match{Fields: []ofp.OXM{inPort(5)}}, Data: data})
		for _, h := range n.Hosts() {
			if len(h.IPs) > 1 {
				t.Fatalf("%d addresses from one packet", len(h.IPs))
			}
			for _, ip := range h.IPs {
				if !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() {
					t.Fatalf("learned %v", ip)
				}
			}
		}
	})
}
