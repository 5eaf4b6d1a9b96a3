package sdn

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ofsim"
)

// With two LAN ports and a host on each, what goes to a learned host
// leaves by its port alone, whoever sends it; the matrix's verdicts do
// not change; the ARP of a host not learned (or moved) is copied to the
// controller, that of a learned one is not.
func TestLANHostsLearnedSimulated(t *testing.T) {
	topo, chutes, lanMACs := simTopo()
	topo.LANHosts = map[string]uint32{lanMACs[0].String(): topo.LANPorts[0], lanMACs[1].String(): topo.LANPorts[1]}
	topo.LANHostIPs = map[string][]netip.Addr{lanMACs[0].String(): {lan1Addr}, lanMACs[1].String(): {lan2Addr}}
	w := newSimWorld(topo, chutes, lanMACs)
	for _, c := range slices.Concat(reachCases, reachCases6) {
		ok, notes, err := w.run(c)
		if err != nil {
			t.Fatalf("%s: simulator: %v", c.name, err)
		}
		if ok != c.want {
			t.Errorf("%s: reached %v with the LAN hosts learned, want %v (%q)", c.name, ok, c.want, notes)
		}
	}
	for _, tt := range []struct {
		c    reachCase
		port uint32
	}{
		{reachCase{from: "web", to: "lan1:554"}, topo.LANPorts[0]},
		{reachCase{from: "scan", to: "lan2:554"}, topo.LANPorts[1]},
		{reachCase{from: "bymac", to: "lan2:554"}, topo.LANPorts[1]},
		{reachCase{from: "gw", to: "lan2:22"}, topo.LANPorts[1]},
		{reachCase{from: "lan1", to: "lan2:22"}, topo.LANPorts[1]},
	} {
		if ok, notes, err := w.run(tt.c); err != nil || !ok {
			t.Fatalf("%s -> %s: %v, %v (%q)", tt.c.from, tt.c.to, ok, err, notes)
		}
		var ports []uint32
		for _, o := range w.requestTrace.Outputs {
			ports = append(ports, o.Port)
		}
		if !slices.Equal(ports, []uint32{tt.port}) {
			t.Errorf("%s -> %s: out of ports %v, want %d alone", tt.c.from, tt.c.to, ports, tt.port)
		}
	}

	arp := func(port uint32, mac net.HardwareAddr, spa ...netip.Addr) ofsim.Packet {
		from := lan1Addr
		if len(spa) > 0 {
			from = spa[0]
		}
		return ofsim.Packet{InPort: port, EthSrc: mac, EthDst: ofsim.Broadcast, EthType: ofsim.EthARP, ARPOp: 1,
			ARPSPA: from, ARPSHA: mac, ARPTPA: lanGW.Addr(), ARPTHA: make(net.HardwareAddr, 6)}
	}
	stranger := net.HardwareAddr{2, 0, 0, 0, 0xaa, 9}
	for _, tt := range []struct {
		name   string
		p      ofsim.Packet
		copied bool
	}{
		{"a learned host", arp(topo.LANPorts[0], lanMACs[0]), false},
		{"a learned host on another port", arp(topo.LANPorts[1], lanMACs[0]), true},
		{"a learned host at a new address", arp(topo.LANPorts[0], lanMACs[0], netip.MustParseAddr("198.51.100.77")), true},
		{"a host not learned", arp(topo.LANPorts[0], stranger), true},
	} {
		w.sw.Reset()
		tr, err := w.sw.Run(tt.p)
		if err != nil {
			t.Fatal(err)
		}
		copied := len(tr.OutputTo(ofp.PortController)) > 0
		if copied != tt.copied || len(tr.OutputTo(ofp.PortLocal)) == 0 {
			t.Errorf("%s's ARP: copied to the controller %v, want %v; outputs %v", tt.name, copied, tt.copied, tr.Outputs)
		}
	}
}

// learn takes a LAN port's unicast senders, moves a host that shows up on
// another port, ignores other ports, group addresses and the gateway's and
// chutes' MACs, and stops at maxLANHosts while every host is active; news
// is signalled without blocking.
func TestLearn(t *testing.T) {
	gwMAC, chuteMAC := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 0x10}
	n := &Network{learned: make(chan struct{}, 1), topo: topology{LANPorts: []uint32{1, 2}, GatewayMAC: gwMAC},
		chutes: map[string]*attached{"web": {Chute: Chute{Name: "web", MAC: chuteMAC}}}}
	in := func(port uint32, mac net.HardwareAddr) *ofp.PacketIn {
		data := make([]byte, 42)
		copy(data[0:6], ofsim.Broadcast)
		copy(data[6:12], mac)
		return &ofp.PacketIn{Match: ofp.Match{Fields: []ofp.OXM{inPort(port)}}, Data: data}
	}
	a := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	before := n.topo.LANHosts
	n.learn(in(1, a))
	n.learn(in(2, a))
	n.learn(in(7, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}))                   // a chute's port, say
	n.learn(in(1, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}))               // multicast
	n.learn(&ofp.PacketIn{Match: ofp.Match{Fields: []ofp.OXM{inPort(1)}}}) // no frame
	n.learn(in(1, gwMAC))                                                  // a LAN host claiming the gateway's MAC
	n.learn(in(2, chuteMAC))                                               // or a chute's
	if got := n.topo.LANHosts; len(got) != 1 || got[a.String()] != 2 {
		t.Errorf("learned %v, want %s on port 2", got, a)
	}
	if len(before) != 0 {
		t.Errorf("learn changed the map a derivation may hold: %v", before)
	}
	select {
	case <-n.learned:
	default:
		t.Error("no news signalled")
	}
	for i := range maxLANHosts + 10 {
		n.learn(in(1, net.HardwareAddr{2, 1, 0, 0, byte(i >> 8), byte(i)}))
	}
	if len(n.topo.LANHosts) != maxLANHosts {
		t.Errorf("%d hosts learned, want at most %d", len(n.topo.LANHosts), maxLANHosts)
	}
	n.learn(in(1, a)) // a known host still moves when the table is full
	if n.topo.LANHosts[a.String()] != 1 {
		t.Errorf("a known host did not move back to port 1 with the table full")
	}
}

// Two LAN ports, a host on each: once the gateway has learned them from
// their ARP, a chute's megabyte to the host on lan1 is not copied to the
// host on lan2.
func TestLANHostsLearned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root and Open vSwitch; TestLANHostsLearnedSimulated runs without")
	}
	tb := newTestbed(t)
	web, _ := tb.chute(t, "web", 0, Policy{LAN: []LANRule{{Prefix: netip.PrefixFrom(lan1Addr, 32)}}}, Bandwidth{})
	nettest.StartTCPServer(t, tb.lan1, ip(lan1Addr, 554))
	macs := []net.HardwareAddr{macOf(t, tb.lan1), macOf(t, tb.lan2)}
	for _, h := range []*nettest.Host{tb.lan1, tb.lan2} {
		if err := ping(h, lanGW.Addr()); err != nil {
			t.Fatalf("%s cannot ping the gateway: %v", h.Name, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tb.n.mu.Lock()
		hosts := tb.n.topo.LANHosts
		tb.n.mu.Unlock()
		if hosts[macs[0].String()] != 0 && hosts[macs[1].String()] != 0 && hosts[macs[0].String()] != hosts[macs[1].String()] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LAN hosts learned: %v, want %s and %s on their ports", hosts, macs[0], macs[1])
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.n.opMu.Lock() // the learned flows are installed
	tb.n.opMu.Unlock()

	const size = 1 << 20
	send := func() {
		c, err := nettest.Dial(t, web, ip(lan1Addr, 554), 3*time.Second)
		if err != nil {
			t.Fatalf("web to lan1: %v", err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		go c.Write(make([]byte, size))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, size)); err != nil {
			t.Fatalf("the megabyte's echo: %v", err)
		}
	}
	send() // resolves lan1 (a broadcast every LAN port sees)
	before := rxBytes(t, tb.lan2)
	send()
	if got := rxBytes(t, tb.lan2) - before; got > size/10 {
		t.Errorf("lan2 received %d bytes while web sent lan1 %d: copied to every LAN port", got, size)
	}
}

// rxBytes is what eth0 in h has received.
func rxBytes(t *testing.T, h *nettest.Host) uint64 {
	t.Helper()
	var n uint64
	if err := netconf.InNetNS(h.NetNS, func() error {
		l, err := netlink.LinkByName("eth0")
		if err == nil {
			n = l.Attrs().Statistics.RxBytes
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// The operator's named hosts are put on their ports over what was
// learned, never learned elsewhere, and checked at Open.
func TestNamedLANHosts(t *testing.T) {
	a, b := "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	learned := map[string]uint32{a: 1, b: 1}
	got := withNamed(learned, map[string]string{b: "lan2", "02:00:00:00:00:0c": "lan1"}, []string{"lan1", "lan2"}, []uint32{5, 6})
	if want := map[string]uint32{a: 1, b: 6, "02:00:00:00:00:0c": 5}; !maps.Equal(got, want) {
		t.Errorf("withNamed = %v, want %v", got, want)
	}
	if learned[b] != 1 {
		t.Errorf("withNamed changed the learned map: %v", learned)
	}

	n := &Network{learned: make(chan struct{}, 1), cfg: Config{LANHosts: map[string]string{b: "lan2"}},
		topo: topology{LANPorts: []uint32{5, 6}, LANHosts: map[string]uint32{b: 6}}}
	mac, _ := net.ParseMAC(b)
	data := make([]byte, 42)
	copy(data[6:12], mac)
	n.learn(&ofp.PacketIn{Match: ofp.Match{Fields: []ofp.OXM{inPort(5)}}, Data: data})
	if n.topo.LANHosts[b] != 6 {
		t.Errorf("a named host's ARP on another port moved it: %v", n.topo.LANHosts)
	}

	for _, hosts := range []map[string]string{{"02:00:00:00:00:0A": "lan1"}, {"not a mac": "lan1"}, {a: "eth9"}} {
		_, err := Open(context.Background(), Config{DataDir: t.TempDir(), LANPorts: []string{"lan1"}, LANHosts: hosts})
		if err == nil || !strings.Contains(err.Error(), "LAN host") {
			t.Errorf("Open with LAN hosts %v: %v, want refused", hosts, err)
		}
	}
}
