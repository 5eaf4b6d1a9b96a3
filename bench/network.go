package main

// The network suite (issue "Chute networking"): what the gateway's flows
// cost a chute's traffic, against the same Open vSwitch with one NORMAL
// flow and against a Linux bridge; how evenly the bridge shares a LAN host
// among chutes; how fast our controller programs the switch, against an
// os-ken app and ovs-ofctl; and the PACKET_IN → PACKET_OUT round trip.
//
// Everything runs in network namespaces the suite creates, with TEST-NET
// addresses, and one private Open vSwitch in the "switch" namespace holds
// every OVS bridge: the gateway's (sdn.Open), the NORMAL peer's and the
// flow-mod targets. Nothing touches the host's own interfaces.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"paradrop/netconf"
	"paradrop/sdn"
	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ovs"
	"paradrop/sdn/ovsdb"
)

// main.go's table stays untouched: suites register themselves.
func init() {
	suites["network"] = suite{
		summary: "chute RTT, TCP, fairness, flow-mods/s, PACKET_IN; vs OVS NORMAL, Linux bridge, os-ken, ovs-ofctl",
		run:     runNetwork,
	}
}

// Addresses: TEST-NET and benchmarking ranges, only ever inside the suite's namespaces.
var (
	netSubnet  = netip.MustParsePrefix("198.18.0.0/24")   // chutes (RFC 2544 benchmarking)
	netLANGW   = netip.MustParsePrefix("198.51.100.1/24") // the gateway on the LAN (TEST-NET-2)
	netLANHost = netip.MustParsePrefix("198.51.100.20/24")
	// IPv6: the LAN host's documentation address, and the unique local
	// /64 of the peers' chutes (ours derive theirs, see sdn.Config.Subnet6).
	netLANHost6 = netip.MustParsePrefix("2001:db8:77::20/64")
	netChutes6  = netip.MustParsePrefix("fd62:656e:6368::/64")
	netPIFrom   = netip.MustParsePrefix("203.0.113.1/24") // PACKET_IN sender (TEST-NET-3)
	netPITo     = netip.MustParsePrefix("203.0.113.2/24")
)

const (
	// netRuns is the number of rounds of every measurement but pings; -n is for the
	// runtime suite's starts, and 20 rounds of 3 s transfers would take
	// far too long.
	netRuns       = 7
	pingRounds    = 20 // short rounds of pings, so that a loaded moment hits every path alike
	pingCount     = 25 // pings per path and round
	transferTime  = 3 * time.Second
	transferWarm  = 500 * time.Millisecond // slow start and staggered dials, not counted
	fairChutes    = 8
	flowModCount  = 20000
	probesPerRun  = 40 // PACKET_IN probes per mode and round
	tcpSinkPort   = 5201
	packetInPort  = 5202
	ofctlTimeout  = 2 * time.Minute
	oskenStartup  = 60 * time.Second
	flowModsRound = 2 * time.Minute
)

// netbed is everything the suite builds; undo tears it down.
type netbed struct {
	dir  string
	undo []func()
	logf func(format string, args ...any)
	log  *os.File

	sw  string // the switch namespace: OVS, the gateway's side, every OVS port
	ovs *ovs.Daemon
	db  *ovsdb.Client
	gw  *sdn.Network

	floorOnly      bool // only ours against the conntrack floor, printed
	floorTransfers int  // TCP transfers per family against the floor
}

// netPath is one way from chutes to a LAN host at netLANHost.
type netPath struct {
	name   string
	chutes []string // chute namespaces; the first one sends alone
	lan    string   // the LAN host's namespace
	rtt    sample   // per-round medians
	pings  sample   // every ping
	tcp    []float64
	// The same over IPv6, for ours and the conntrack floor.
	rtt6, pings6 sample
	tcp6         []float64
	// ports are the chute's and the LAN host's switch ports (OVS paths);
	// megaflows6 the datapath's flows that a few IPv6 pings made.
	ports      []string
	megaflows6 []string
	// tos marks the path's packets (the floor on ours' ports); 0 for none.
	tos int
}

func runNetwork(ctx context.Context, o options) (string, error) {
	for _, bin := range []string{"busybox", "ovs-ofctl", "osken-manager"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "", fmt.Errorf("%s not found (apt-get install -y busybox-static openvswitch-switch python3-os-ken): %w", bin, err)
		}
	}
	if err := ovs.Installed(); err != nil {
		return "", err
	}
	if o.floorTransfers < 1 {
		return "", fmt.Errorf("-floor-transfers %d: want at least 1", o.floorTransfers)
	}
	b := &netbed{floorOnly: o.floorOnly, floorTransfers: o.floorTransfers}
	defer b.close()
	if err := b.start(ctx); err != nil {
		return "", err
	}
	body, err := b.run(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "end of the network suite's log:\n%s\n", b.logTail())
	}
	return body, err
}

func (b *netbed) run(ctx context.Context) (string, error) {
	ours, err := b.oursPath(ctx)
	if err != nil {
		return "", err
	}
	if b.floorOnly {
		for _, dst := range []netip.Addr{netLANHost.Addr(), netLANHost6.Addr()} {
			if _, err := runInNetNS(ctx, ours.chutes[0], "busybox", "ping", "-c", "1", "-W", "2", dst.String()); err != nil {
				return "", fmt.Errorf("%s: the LAN host does not answer at %s: %w", ours.name, dst, err)
			}
		}
		fc, err := b.floorCompare(ctx, ours)
		if err != nil {
			return "", err
		}
		goals, details := fc.report()
		fmt.Print(goals, "\n", details)
		return "", nil // a partial run: the README is left as it is
	}
	normal, err := b.normalPath(ctx)
	if err != nil {
		return "", err
	}
	floor, err := b.conntrackPath(ctx)
	if err != nil {
		return "", err
	}
	linuxOff, err := b.linuxPath("lboff", true)
	if err != nil {
		return "", err
	}
	linuxOn, err := b.linuxPath("lbon", false)
	if err != nil {
		return "", err
	}
	paths := []*netPath{ours, normal, floor, linuxOff, linuxOn}
	for _, p := range paths {
		for _, c := range p.chutes {
			if _, err := runInNetNS(ctx, c, "busybox", "ping", "-c", "1", "-W", "2", netLANHost.Addr().String()); err != nil {
				return "", fmt.Errorf("%s: the LAN host does not answer: %w", p.name, err)
			}
		}
	}

	fmt.Printf("measuring RTT, %d rounds...\n", pingRounds)
	for r := range pingRounds {
		// Each path goes first in turn.
		for i := range paths {
			if err := paths[(r+i)%len(paths)].ping(ctx, false); err != nil {
				return "", err
			}
		}
	}
	fmt.Printf("measuring TCP, %d rounds...\n", netRuns)
	fair := map[int]*fairness{2: {n: 2}, fairChutes: {n: fairChutes}}
	for range netRuns {
		for _, p := range paths {
			rates, err := tcpTransfer(p.chutes[:1], p.lan, netLANHost.Addr())
			if err != nil {
				return "", fmt.Errorf("%s: TCP: %w", p.name, err)
			}
			p.tcp = append(p.tcp, rates[0])
		}
		for _, f := range fair {
			rates, err := tcpTransfer(ours.chutes[:f.n], ours.lan, netLANHost.Addr())
			if err != nil {
				return "", fmt.Errorf("fairness, %d chutes: %w", f.n, err)
			}
			f.add(rates)
		}
	}

	// IPv6, ours against the floor only: the goal is against it.
	if _, err := runInNetNS(ctx, ours.chutes[0], "busybox", "ping", "-c", "1", "-W", "2", netLANHost6.Addr().String()); err != nil {
		return "", fmt.Errorf("%s: the LAN host does not answer over IPv6: %w", ours.name, err)
	}
	// IPv6 comes from the paired rounds against the floor, on ours' ports.
	fc, err := b.floorCompare(ctx, ours)
	if err != nil {
		return "", err
	}
	for _, p := range []*netPath{ours, fc.floor} {
		if p.megaflows6, err = b.megaflows(ctx, p); err != nil {
			return "", err
		}
	}

	fmt.Printf("measuring flow-mods/s, %d rounds...\n", netRuns)
	fm, err := b.flowMods(ctx)
	if err != nil {
		return "", err
	}
	fmt.Println("measuring the PACKET_IN round trip...")
	pi, err := b.packetIn(ctx, fm.ctl)
	if err != nil {
		return "", err
	}
	return netReport(paths, fair, fc, fm, pi), nil
}

func (b *netbed) start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "paradrop-bench-net-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	b.dir = dir
	b.undo = append(b.undo, func() { os.RemoveAll(dir) })
	if b.log, err = os.Create(filepath.Join(dir, "network.log")); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	b.undo = append(b.undo, func() { b.log.Close() })
	var logMu sync.Mutex
	b.logf = func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(b.log, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
	if b.sw, err = b.netns("switch"); err != nil {
		return err
	}
	// Started from a thread in the switch namespace, the daemons live
	// there, and so do the bridges' internal ports.
	if err := netconf.InNetNS(b.sw, func() (err error) {
		b.ovs, err = ovs.Start(ctx, filepath.Join(dir, "ovs"))
		return err
	}); err != nil {
		return err
	}
	b.undo = append(b.undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.ovs.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: network:", err)
		}
	})
	if b.db, err = ovsdb.Dial(ctx, b.ovs.DBSocket()); err != nil {
		return fmt.Errorf("ovsdb: %w", err)
	}
	b.undo = append(b.undo, func() { b.db.Close() })
	return nil
}

// close undoes everything, last first.
func (b *netbed) close() {
	for i := len(b.undo) - 1; i >= 0; i-- {
		b.undo[i]()
	}
}

// logTail is the end of the suite's log (the gateway's and controllers'
// messages), which says why a failed run failed.
func (b *netbed) logTail() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "network.log"))
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(data)
}

// netns makes a namespace pinned in the suite's directory.
func (b *netbed) netns(name string) (string, error) {
	p := filepath.Join(b.dir, "ns", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("netns dir: %w", err)
	}
	if err := netconf.EnsureNetNS(p); err != nil {
		return "", err
	}
	b.undo = append(b.undo, func() { netconf.DeleteNetNS(p) })
	return p, nil
}

// vethEnd is one end of a veth pair.
type vethEnd struct {
	ns     string
	name   string
	addr   netip.Prefix     // optional
	mac    net.HardwareAddr // optional
	master string           // optional Linux bridge in ns
}

// makeVeth connects a and b, both up. txOff turns TX checksum offload off on
// both ends, as the OVS userspace datapath needs and sdn does for chutes.
// The pair goes away with its namespaces.
func makeVeth(a, b vethEnd, txOff bool) error {
	nsA, err := netns.GetFromPath(a.ns)
	if err != nil {
		return fmt.Errorf("veth %s: %w", a.name, err)
	}
	defer nsA.Close()
	nsB, err := netns.GetFromPath(b.ns)
	if err != nil {
		return fmt.Errorf("veth %s: %w", b.name, err)
	}
	defer nsB.Close()
	// Both ends are born in their namespaces: no name ever shows in the
	// host's.
	if err := netlink.LinkAdd(&netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: a.name, HardwareAddr: a.mac, Namespace: netlink.NsFd(nsA)},
		PeerName:  b.name, PeerHardwareAddr: b.mac, PeerNamespace: netlink.NsFd(nsB),
	}); err != nil {
		return fmt.Errorf("veth %s-%s: %w", a.name, b.name, err)
	}
	for _, e := range []vethEnd{a, b} {
		if err := e.configure(txOff); err != nil {
			return fmt.Errorf("veth end %s: %w", e.name, err)
		}
	}
	return nil
}

func (e vethEnd) configure(txOff bool) error {
	h, err := netlinkIn(e.ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(e.name)
	if err != nil {
		return err
	}
	if e.addr.IsValid() {
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNetOf(e.addr)}); err != nil {
			return err
		}
	}
	if e.master != "" {
		br, err := h.LinkByName(e.master)
		if err != nil {
			return err
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return err
		}
	}
	if txOff {
		if err := netconf.DisableTxOffload(e.name, e.ns); err != nil {
			return err
		}
	}
	return h.LinkSetUp(l)
}

func netlinkIn(nsPath string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

func ipNetOf(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// routeOnLink routes dst out of dev in ns without a router: the peers' hosts
// sit on one L2 segment, as chutes and the LAN do on the gateway's bridge.
func routeOnLink(ns, dev string, dst netip.Prefix) error {
	h, err := netlinkIn(ns)
	if err != nil {
		return fmt.Errorf("route %s: %w", dst, err)
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("route %s: %w", dst, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNetOf(dst.Masked()), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s dev %s: %w", dst, dev, err)
	}
	return nil
}

// oursPath is the gateway as the daemon runs it: sdn.Open with the LAN on
// a port of its bridge, and fairChutes chutes attached that may reach the
// LAN host.
func (b *netbed) oursPath(ctx context.Context) (*netPath, error) {
	p := &netPath{name: "paradrop flows (sdn.Open, OVS netdev)"}
	var err error
	if p.lan, err = b.netns("ours-lan"); err != nil {
		return nil, err
	}
	if err := makeVeth(vethEnd{ns: p.lan, name: "eth0", addr: netLANHost}, vethEnd{ns: b.sw, name: "lan0"}, true); err != nil {
		return nil, err
	}
	if err := addAddr6(p.lan, netLANHost6); err != nil {
		return nil, err
	}
	h, err := netlinkIn(p.lan)
	if err != nil {
		return nil, fmt.Errorf("LAN host route: %w", err)
	}
	defer h.Close()
	// The LAN reaches chutes through the gateway, its router.
	if err := h.RouteAdd(&netlink.Route{Dst: ipNetOf(netSubnet), Gw: netLANGW.Addr().AsSlice()}); err != nil {
		return nil, fmt.Errorf("LAN host route: %w", err)
	}
	b.gw, err = sdn.Open(ctx, sdn.Config{
		DataDir: filepath.Join(b.dir, "gw"), OVSDB: b.ovs.DBSocket(), NetNS: b.sw,
		Subnet: netSubnet, LANPorts: []string{"lan0"}, LANAddr: netLANGW,
		// Nothing breaks the bridge here; repairs would only add noise
		// to the CPU figures.
		RepairInterval: time.Hour, Logf: b.logf,
	})
	if err != nil {
		return nil, err
	}
	b.undo = append(b.undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b.gw.Close(ctx)
	})
	// The chutes' /64 is on the LAN host's link (see the README).
	if err := routeOnLink(p.lan, "eth0", b.gw.Subnet6()); err != nil {
		return nil, err
	}
	for i := range fairChutes {
		name := fmt.Sprintf("bench%d", i)
		ns, err := b.netns("ours-" + name)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			p.ports = []string{netconf.HostIfFor(name), "lan0"}
		}
		err = b.gw.Attach(ctx, sdn.Chute{Name: name, NetNS: ns, MAC: netconf.MACFor(name), IP: sdn.AddressFor(netSubnet, i),
			Net: sdn.Policy{LAN: []sdn.LANRule{{Prefix: netip.PrefixFrom(netLANHost.Addr(), 32)}, {Prefix: netip.PrefixFrom(netLANHost6.Addr(), 128)}}}})
		if err != nil {
			return nil, err
		}
		p.chutes = append(p.chutes, ns)
	}
	return p, nil
}

// twoHosts makes a chute and a LAN host namespace for a peer path, with
// the chute's address and the LAN host's on one L2 segment.
func (b *netbed) twoHosts(prefix string) (*netPath, error) {
	chute, err := b.netns(prefix + "-chute")
	if err != nil {
		return nil, err
	}
	lan, err := b.netns(prefix + "-lan")
	if err != nil {
		return nil, err
	}
	return &netPath{chutes: []string{chute}, lan: lan}, nil
}

func (p *netPath) routes() error {
	if err := routeOnLink(p.chutes[0], "eth0", netLANHost); err != nil {
		return err
	}
	return routeOnLink(p.lan, "eth0", netSubnet)
}

// normalPath is a second bridge of the same OVS with one NORMAL flow and
// the same veths, TX offload off.
func (b *netbed) normalPath(ctx context.Context) (*netPath, error) {
	return b.ovsPath(ctx, "n", "OVS netdev, one NORMAL flow", func(uint32, uint32) []string {
		return []string{"actions=NORMAL"}
	})
}

// conntrackPath is a third bridge of the same OVS with the least a
// stateful pipeline does: every IPv4 packet through the tracker and its
// recirculation, new connections from the chute committed, established
// ones delivered. Its cost over NORMAL's is the floor under ours.
func (b *netbed) conntrackPath(ctx context.Context) (*netPath, error) {
	return b.ovsPath(ctx, "c", "OVS netdev, minimal conntrack pipeline", func(chute, lan uint32) []string {
		return []string{
			"priority=10,arp,actions=NORMAL",
			"priority=10,ip,actions=ct(zone=5,table=1)",
			fmt.Sprintf("table=1,priority=10,ct_state=+new+trk,ip,in_port=%d,actions=ct(commit,zone=5),output:%d", chute, lan),
			fmt.Sprintf("table=1,priority=10,ct_state=+est+trk,ip,in_port=%d,actions=output:%d", chute, lan),
			fmt.Sprintf("table=1,priority=10,ct_state=+est+trk,ip,in_port=%d,actions=output:%d", lan, chute),
			// IPv6 alike, neighbour discovery by NORMAL as ARP.
			"priority=20,icmp6,icmp_type=135,actions=NORMAL",
			"priority=20,icmp6,icmp_type=136,actions=NORMAL",
			"priority=10,ipv6,actions=ct(zone=5,table=1)",
			fmt.Sprintf("table=1,priority=10,ct_state=+new+trk,ipv6,in_port=%d,actions=ct(commit,zone=5),output:%d", chute, lan),
			fmt.Sprintf("table=1,priority=10,ct_state=+est+trk,ipv6,in_port=%d,actions=output:%d", chute, lan),
			fmt.Sprintf("table=1,priority=10,ct_state=+est+trk,ipv6,in_port=%d,actions=output:%d", lan, chute),
		}
	})
}

// ovsPath is a bridge of the suite's OVS (pdb+prefix) holding the flows
// given the chute's and the LAN host's ports, with the same veths as ours,
// TX offload off.
func (b *netbed) ovsPath(ctx context.Context, prefix, name string, flows func(chute, lan uint32) []string) (*netPath, error) {
	p, err := b.twoHosts(prefix + "ovs")
	if err != nil {
		return nil, err
	}
	p.name = name
	br := "pdb" + prefix
	if err := b.db.EnsureBridge(ctx, ovsdb.BridgeConfig{Name: br, DatapathType: "netdev",
		Protocols: []string{"OpenFlow13"}, FailMode: "secure", DisableInBand: true}); err != nil {
		return nil, err
	}
	chutePort, lanPort := prefix+"chute", prefix+"lan"
	p.ports = []string{chutePort, lanPort}
	if err := makeVeth(vethEnd{ns: p.chutes[0], name: "eth0", addr: netip.PrefixFrom(sdn.AddressFor(netSubnet, 0), netSubnet.Bits())},
		vethEnd{ns: b.sw, name: chutePort}, true); err != nil {
		return nil, err
	}
	if err := makeVeth(vethEnd{ns: p.lan, name: "eth0", addr: netLANHost}, vethEnd{ns: b.sw, name: lanPort}, true); err != nil {
		return nil, err
	}
	var ofports []uint32
	for _, port := range []string{chutePort, lanPort} {
		if err := b.db.AddPort(ctx, br, port, "", nil); err != nil {
			return nil, err
		}
		n, err := b.db.OFPort(ctx, port)
		if err != nil {
			return nil, err
		}
		ofports = append(ofports, uint32(n))
	}
	for _, f := range flows(ofports[0], ofports[1]) {
		if _, err := b.ofctl(ctx, br, "add-flow", "BR", f); err != nil {
			return nil, err
		}
	}
	chute6 := netip.PrefixFrom(sdn.AddressFor6(netSubnet, netChutes6, sdn.AddressFor(netSubnet, 0)), netChutes6.Bits())
	for _, a := range []struct {
		ns          string
		addr, route netip.Prefix
	}{{p.chutes[0], chute6, netLANHost6}, {p.lan, netLANHost6, netChutes6}} {
		if err := addAddr6(a.ns, a.addr); err != nil {
			return nil, err
		}
		if err := routeOnLink(a.ns, "eth0", a.route); err != nil {
			return nil, err
		}
	}
	return p, p.routes()
}

// addAddr6 puts an IPv6 address on eth0 in ns, usable at once (no
// duplicate address detection, as sdn does for chutes).
func addAddr6(ns string, p netip.Prefix) error {
	h, err := netlinkIn(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNetOf(p), Flags: syscall.IFA_F_NODAD}); err != nil {
		return fmt.Errorf("address %s: %w", p, err)
	}
	return nil
}

// linuxPath is a Linux bridge in a namespace of its own, the same veths
// with TX offload off or at the kernel's defaults.
func (b *netbed) linuxPath(prefix string, txOff bool) (*netPath, error) {
	p, err := b.twoHosts(prefix)
	if err != nil {
		return nil, err
	}
	p.name = "Linux bridge, offloads on (default)"
	if txOff {
		p.name = "Linux bridge, TX offload off"
	}
	brNS, err := b.netns(prefix + "-br")
	if err != nil {
		return nil, err
	}
	h, err := netlinkIn(brNS)
	if err != nil {
		return nil, fmt.Errorf("linux bridge: %w", err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("linux bridge: %w", err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("linux bridge: %w", err)
	}
	if err := makeVeth(vethEnd{ns: p.chutes[0], name: "eth0", addr: netip.PrefixFrom(sdn.AddressFor(netSubnet, 0), netSubnet.Bits())},
		vethEnd{ns: brNS, name: "chute", master: "br0"}, txOff); err != nil {
		return nil, err
	}
	if err := makeVeth(vethEnd{ns: p.lan, name: "eth0", addr: netLANHost}, vethEnd{ns: brNS, name: "lan", master: "br0"}, txOff); err != nil {
		return nil, err
	}
	return p, p.routes()
}

// ofctl runs ovs-ofctl with OpenFlow 1.3; "BR" in args stands for bridge
// br's management socket.
func (b *netbed) ofctl(ctx context.Context, br string, args ...string) (*os.ProcessState, error) {
	ctx, cancel := context.WithTimeout(ctx, ofctlTimeout)
	defer cancel()
	full := []string{"-O", "OpenFlow13"}
	for _, a := range args {
		if a == "BR" {
			a = "unix:" + b.ovs.MgmtSocket(br)
		}
		full = append(full, a)
	}
	cmd := exec.CommandContext(ctx, "ovs-ofctl", full...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ovs-ofctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return cmd.ProcessState, nil
}

// runInNetNS runs argv in namespace ns and returns its output.
func runInNetNS(ctx context.Context, ns string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	// A child inherits the namespaces of the thread that forks it.
	if err := netconf.InNetNS(ns, cmd.Start); err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out.String())
	}
	return out.String(), nil
}

// megaflowStats is what dpctl/dump-flows says of a flow's use, left out
// of the report.
var megaflowStats = regexp.MustCompile(`, packets:\d+, bytes:\d+, used:[^,]+,( flags:[^,]*,)?`)

// megaflows flushes the datapath's flows, sends 3 IPv6 pings from p's
// first chute and returns the datapath flows on p's ports that they used:
// what the switch does per packet, each pass after a recirculation being
// a flow of its own. revalidator/purge, not dpctl/del-flows: behind the
// upcall handlers' back the latter makes them lose the next upcalls.
func (b *netbed) megaflows(ctx context.Context, p *netPath) ([]string, error) {
	ctl := filepath.Join(b.dir, "ovs", "ovs-vswitchd.ctl")
	if out, err := exec.CommandContext(ctx, "ovs-appctl", "-t", ctl, "revalidator/purge").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("revalidator/purge: %w: %s", err, out)
	}
	// Echo requests marked as the path's (the floor shares ours' ports).
	e, err := newEchoProber(p.chutes[0], netLANHost6.Addr())
	if err != nil {
		return nil, err
	}
	defer e.Close()
	for range 3 {
		if _, lost, err := e.probe(p.tos, 2*time.Second); err != nil || lost {
			return nil, fmt.Errorf("%s: echo to %s: lost %v, %v", p.name, netLANHost6.Addr(), lost, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, err := exec.CommandContext(ctx, "ovs-appctl", "-t", ctl, "dpctl/dump-flows", "--names").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dpctl/dump-flows: %w: %s", err, out)
	}
	var flows []string
	for _, l := range strings.Split(string(out), "\n") {
		used := !strings.Contains(l, "packets:0,") && strings.Contains(l, "packets:")
		if used && slices.ContainsFunc(p.ports, func(port string) bool { return strings.Contains(l, "in_port("+port+")") }) {
			flows = append(flows, megaflowStats.ReplaceAllString(strings.TrimSpace(l), ""))
		}
	}
	slices.Sort(flows)
	return flows, nil
}

var pingTimeRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// ping runs one round of pings from p's first chute, over IPv6 if six,
// and keeps the round's median and its pings.
func (p *netPath) ping(ctx context.Context, six bool) error {
	rtt, pings := &p.rtt, &p.pings
	if six {
		rtt, pings = &p.rtt6, &p.pings6
	}
	med, run, err := p.pingRound(ctx, six)
	if err != nil {
		return err
	}
	*rtt = append(*rtt, med)
	*pings = append(*pings, run...)
	return nil
}

// pingRound is one round of pingCount pings from p's first chute: their
// median and every ping.
func (p *netPath) pingRound(ctx context.Context, six bool) (time.Duration, sample, error) {
	dst := netLANHost.Addr()
	if six {
		dst = netLANHost6.Addr()
	}
	out, err := runInNetNS(ctx, p.chutes[0], "busybox", "ping", "-c", strconv.Itoa(pingCount), "-i", "0.01", "-W", "2",
		dst.String())
	if err != nil {
		return 0, nil, fmt.Errorf("%s: ping: %w", p.name, err)
	}
	var run sample
	for _, m := range pingTimeRE.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: ping: %q: %w", p.name, m[0], err)
		}
		run = append(run, time.Duration(v*float64(time.Millisecond)))
	}
	if len(run) < pingCount*9/10 {
		return 0, nil, fmt.Errorf("%s: ping: %d of %d answers", p.name, len(run), pingCount)
	}
	return run.median(), run, nil
}

// tcpTransfer has every chute send TCP to the LAN host at dst at once for
// transferTime and returns each one's rate in bit/s, counted by the
// receiver after transferWarm so that all are sending.
func tcpTransfer(chutes []string, lan string, dst netip.Addr) ([]float64, error) {
	return tcpTransferFor(chutes, lan, dst, transferTime, transferWarm)
}

// tcpTransferFor is tcpTransfer for a run of length total, counted after warm.
func tcpTransferFor(chutes []string, lan string, dst netip.Addr, total, warm time.Duration) ([]float64, error) {
	var ln net.Listener
	if err := netconf.InNetNS(lan, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, tcpSinkPort).String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	received := make([]atomic.Int64, len(chutes))
	conns := make([]net.Conn, len(chutes))
	var wg sync.WaitGroup
	// The receivers end when their connections close, the acceptor when
	// the listener does; only then can we wait for them.
	defer func() {
		ln.Close()
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				// The sender's first byte says which chute it is.
				var id [1]byte
				if _, err := io.ReadFull(c, id[:]); err != nil || int(id[0]) >= len(received) {
					return
				}
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					received[id[0]].Add(int64(n))
					if err != nil {
						return
					}
				}
			})
		}
	})
	for i, ns := range chutes {
		if err := netconf.InNetNS(ns, func() (err error) {
			conns[i], err = net.DialTimeout("tcp", netip.AddrPortFrom(dst, tcpSinkPort).String(), 5*time.Second)
			return err
		}); err != nil {
			return nil, fmt.Errorf("dial from chute %d: %w", i, err)
		}
		if _, err := conns[i].Write([]byte{byte(i)}); err != nil {
			return nil, fmt.Errorf("chute %d: %w", i, err)
		}
	}
	start := time.Now()
	var senders sync.WaitGroup
	for _, c := range conns {
		// Still sending when the last count is taken.
		c.SetWriteDeadline(start.Add(total + 200*time.Millisecond))
		senders.Go(func() {
			buf := make([]byte, 128<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
	}
	counts := func() []int64 {
		v := make([]int64, len(received))
		for i := range received {
			v[i] = received[i].Load()
		}
		return v
	}
	time.Sleep(time.Until(start.Add(warm)))
	before, t0 := counts(), time.Now()
	time.Sleep(time.Until(start.Add(total)))
	after, t1 := counts(), time.Now()
	senders.Wait()
	rates := make([]float64, len(chutes))
	for i := range rates {
		rates[i] = float64(after[i]-before[i]) * 8 / t1.Sub(t0).Seconds()
		if rates[i] == 0 {
			return nil, fmt.Errorf("chute %d sent nothing", i)
		}
	}
	return rates, nil
}

// fairness is the rounds of n chutes sending at once.
type fairness struct {
	n    int
	jain []float64
	sum  []float64
	each []float64 // every chute's rate in every round
}

func (f *fairness) add(rates []float64) {
	var s, sq float64
	for _, r := range rates {
		s += r
		sq += r * r
	}
	f.jain = append(f.jain, s*s/(float64(len(rates))*sq))
	f.sum = append(f.sum, s)
	f.each = append(f.each, rates...)
}

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// flowModRun is one timed programming of flowModCount flows.
type flowModRun struct {
	wall, cpu time.Duration
}

type flowModResult struct {
	name string
	runs []flowModRun
}

func (r *flowModResult) median() (wall, cpu time.Duration) {
	var w, c sample
	for _, x := range r.runs {
		w, c = append(w, x.wall), append(c, x.cpu)
	}
	return w.median(), c.median()
}

// flowModDst is the destination of flow i of the flow-mod measurement,
// the same for every sender: table 0, priority 100, ip,nw_dst=198.18.X.Y/32
// (the benchmarking range; never on a wire), actions=output:1.
func flowModDst(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}) }

func flowModFlows() []controller.Flow {
	flows := make([]controller.Flow, flowModCount)
	for i := range flows {
		flows[i] = controller.Flow{Table: 0, Priority: 100,
			Match:        ofp.Match{Fields: []ofp.OXM{ofp.FieldEthType.Uint(0x0800), ofp.FieldIPv4Dst.Addr(flowModDst(i))}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(&ofp.ActionOutput{Port: 1})}}
	}
	return flows
}

// flowModsResults are every sender's rounds, and ours' read-back; ctl is
// ours, kept for the PACKET_IN round trip.
type flowModsResults struct {
	ours, readBack, osken, ofctl, bundle flowModResult
	ctl                                  *controller.Controller
}

// flowMods programs flowModCount flows into three bridges of the switch,
// round robin: ours through sdn/controller, the os-ken app, ovs-ofctl
// (plain and --bundle).
// Each bridge is emptied, untimed, before its turn.
func (b *netbed) flowMods(ctx context.Context) (*flowModsResults, error) {
	const oursBr, oskenBr, ofctlBr = "pdbfm", "pdbosken", "pdbofctl"
	r := &flowModsResults{
		ours:     flowModResult{name: "paradrop controller: SetDesired + Sync"},
		readBack: flowModResult{name: "paradrop controller: a second Sync, nothing to change (reads the flows back)"},
		osken:    flowModResult{name: "os-ken app (bench/oskenapp)"},
		ofctl:    flowModResult{name: "ovs-ofctl add-flows"},
		bundle:   flowModResult{name: "ovs-ofctl --bundle add-flows"},
	}

	ctl := controller.New(controller.Config{Listen: "127.0.0.1:0", EchoTimeout: time.Minute,
		ReconcileInterval: time.Hour, Logf: b.logf})
	var addr net.Addr
	if err := netconf.InNetNS(b.sw, func() (err error) { addr, err = ctl.Listen(); return err }); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := ctl.Run(runCtx); err != nil {
			b.logf("controller: %v", err)
		}
	})
	b.undo = append(b.undo, func() { cancel(); wg.Wait() })
	r.ctl = ctl

	oskenPort, oskenOut, err := b.startOsken(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range []ovsdb.BridgeConfig{
		{Name: oursBr, Controller: "tcp:" + addr.String()},
		{Name: oskenBr},
		{Name: ofctlBr},
	} {
		c.DatapathType, c.Protocols, c.FailMode, c.DisableInBand = "netdev", []string{"OpenFlow13"}, "secure", true
		if err := b.db.EnsureBridge(ctx, c); err != nil {
			return nil, err
		}
	}
	syncCtx, cancelSync := context.WithTimeout(ctx, netRuns*flowModsRound)
	defer cancelSync()
	if err := ctl.Sync(syncCtx); err != nil {
		return nil, fmt.Errorf("our controller and the switch: %w", err)
	}

	file := filepath.Join(b.dir, "flows.txt")
	var text strings.Builder
	for i := range flowModCount {
		fmt.Fprintf(&text, "table=0,priority=100,ip,nw_dst=%s,actions=output:1\n", flowModDst(i))
	}
	if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
		return nil, fmt.Errorf("flows file: %w", err)
	}

	for range netRuns {
		// ours, as the daemon programs the bridge (sdn's apply)
		if _, err := b.ofctl(ctx, oursBr, "del-flows", "BR"); err != nil {
			return nil, err
		}
		run, err := timeInProcess(func() error {
			ctl.SetDesired(flowModFlows(), nil)
			return ctl.Sync(syncCtx)
		})
		if err != nil {
			return nil, fmt.Errorf("ours: %w", err)
		}
		r.ours.runs = append(r.ours.runs, run)
		if run, err = timeInProcess(func() error { return ctl.Sync(syncCtx) }); err != nil {
			return nil, fmt.Errorf("ours, read-back: %w", err)
		}
		r.readBack.runs = append(r.readBack.runs, run)
		if err := b.checkFlows(ctx, oursBr); err != nil {
			return nil, err
		}

		// os-ken: each connection of the switch is one round.
		if _, err := b.ofctl(ctx, oskenBr, "del-flows", "BR"); err != nil {
			return nil, err
		}
		if run, err = b.oskenRound(ctx, oskenBr, oskenPort, oskenOut); err != nil {
			return nil, err
		}
		r.osken.runs = append(r.osken.runs, run)

		// ovs-ofctl exits on the barrier reply after its flows: plain,
		// it waits for one after every flow_mod; with --bundle, for the
		// commit of all of them.
		for _, c := range []struct {
			res  *flowModResult
			args []string
		}{
			{&r.ofctl, []string{"add-flows", "BR", file}},
			{&r.bundle, []string{"--bundle", "add-flows", "BR", file}},
		} {
			if _, err := b.ofctl(ctx, ofctlBr, "del-flows", "BR"); err != nil {
				return nil, err
			}
			start := time.Now()
			st, err := b.ofctl(ctx, ofctlBr, c.args...)
			if err != nil {
				return nil, err
			}
			c.res.runs = append(c.res.runs, flowModRun{wall: time.Since(start), cpu: st.UserTime() + st.SystemTime()})
			if err := b.checkFlows(ctx, ofctlBr); err != nil {
				return nil, err
			}
		}
	}
	// Emptied, so that the PACKET_IN flows are all ours' bridge holds.
	ctl.SetDesired(nil, nil)
	if err := ctl.Sync(syncCtx); err != nil {
		return nil, err
	}
	return r, nil
}

// timeInProcess times fn and the process's CPU time (all threads: the
// controller runs in-process) while it runs.
func timeInProcess(fn func() error) (flowModRun, error) {
	cpu0, err := processCPU()
	if err != nil {
		return flowModRun{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return flowModRun{}, err
	}
	wall := time.Since(start)
	cpu1, err := processCPU()
	if err != nil {
		return flowModRun{}, err
	}
	return flowModRun{wall: wall, cpu: cpu1 - cpu0}, nil
}

func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// checkFlows fails unless br holds exactly the flowModCount flows: a rate
// means nothing if the flows did not all arrive.
func (b *netbed) checkFlows(ctx context.Context, br string) error {
	ctx, cancel := context.WithTimeout(ctx, ofctlTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", "unix:"+b.ovs.MgmtSocket(br)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ovs-ofctl dump-aggregate %s: %w: %s", br, err, out)
	}
	if want := fmt.Sprintf("flow_count=%d", flowModCount); !strings.Contains(string(out), want) {
		return fmt.Errorf("bridge %s: %s, want %s", br, strings.TrimSpace(string(out)), want)
	}
	return nil
}

// startOsken runs osken-manager with the app in the switch namespace, so
// that the switch reaches it on loopback. It returns the app's port and
// the file it appends its results to.
func (b *netbed) startOsken(ctx context.Context) (int, string, error) {
	var port int
	if err := netconf.InNetNS(b.sw, func() (err error) { port, err = freePort(); return err }); err != nil {
		return 0, "", err
	}
	app, err := filepath.Abs("bench/oskenapp/flowmods.py")
	if err != nil {
		return 0, "", fmt.Errorf("os-ken app: %w", err)
	}
	out := filepath.Join(b.dir, "osken.jsonl")
	logf, err := os.Create(filepath.Join(b.dir, "osken.log"))
	if err != nil {
		return 0, "", fmt.Errorf("os-ken log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("osken-manager", "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", strconv.Itoa(port), app)
	cmd.Env = append(os.Environ(), "FLOWMODS_N="+strconv.Itoa(flowModCount), "FLOWMODS_OUT="+out)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := netconf.InNetNS(b.sw, cmd.Start); err != nil {
		return 0, "", fmt.Errorf("start osken-manager: %w", err)
	}
	b.undo = append(b.undo, func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Listening once a connection succeeds; the app ignores it, as it
	// never completes a handshake.
	deadline := time.Now().Add(oskenStartup)
	for {
		var c net.Conn
		err := netconf.InNetNS(b.sw, func() (err error) {
			c, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			return err
		})
		if err == nil {
			c.Close()
			return port, out, nil
		}
		if time.Now().After(deadline) {
			tail, _ := os.ReadFile(logf.Name())
			return 0, "", fmt.Errorf("osken-manager not listening after %s: %s", oskenStartup, tail)
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// oskenRound points the bridge at the os-ken app, waits for the app's
// result line and disconnects the bridge again.
func (b *netbed) oskenRound(ctx context.Context, br string, port int, out string) (flowModRun, error) {
	before, err := oskenResults(out)
	if err != nil {
		return flowModRun{}, err
	}
	cfg := ovsdb.BridgeConfig{Name: br, DatapathType: "netdev", Protocols: []string{"OpenFlow13"}, FailMode: "secure",
		DisableInBand: true, Controller: fmt.Sprintf("tcp:127.0.0.1:%d", port)}
	if err := b.db.EnsureBridge(ctx, cfg); err != nil {
		return flowModRun{}, err
	}
	deadline := time.Now().Add(flowModsRound)
	for {
		res, err := oskenResults(out)
		if err != nil {
			return flowModRun{}, err
		}
		if len(res) > len(before) {
			// Before the disconnect: OVS flushes a bridge's flows when
			// its last controller goes.
			if err := b.checkFlows(ctx, br); err != nil {
				return flowModRun{}, err
			}
			cfg.Controller = ""
			return res[len(res)-1], b.db.EnsureBridge(ctx, cfg)
		}
		if time.Now().After(deadline) {
			return flowModRun{}, fmt.Errorf("os-ken app: no barrier reply after %s (see its log)", flowModsRound)
		}
		select {
		case <-ctx.Done():
			return flowModRun{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// oskenResults reads the app's result lines.
func oskenResults(file string) ([]flowModRun, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("os-ken results: %w", err)
	}
	defer f.Close()
	var runs []flowModRun
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			N     int     `json:"n"`
			WallS float64 `json:"wall_s"`
			CPUS  float64 `json:"cpu_s"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			// The last line may be half written.
			break
		}
		if line.N != flowModCount {
			return nil, fmt.Errorf("os-ken app sent %d flows, want %d", line.N, flowModCount)
		}
		runs = append(runs, flowModRun{wall: secondsDur(line.WallS), cpu: secondsDur(line.CPUS)})
	}
	return runs, sc.Err()
}

func secondsDur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// packetInResult is the one-way time of UDP probes from one namespace to
// another across ours' bridge, by a flow to the controller (PACKET_IN,
// answered by a PACKET_OUT to the other port) and by a plain output flow.
type packetInResult struct {
	viaController, direct sample
	lost                  int
}

// packetIn measures a packet's trip through the controller: a flow sends
// what enters from port 1 to the controller, whose OnPacketIn sends it out
// of port 2 in a PACKET_OUT. The probe is timed from the sender's write
// to the receiver's read, both in this process.
func (b *netbed) packetIn(ctx context.Context, ctl *controller.Controller) (*packetInResult, error) {
	const br = "pdbfm"
	from, err := b.netns("pi-from")
	if err != nil {
		return nil, err
	}
	to, err := b.netns("pi-to")
	if err != nil {
		return nil, err
	}
	toMAC := netconf.MACFor("pi-to")
	if err := makeVeth(vethEnd{ns: from, name: "eth0", addr: netPIFrom}, vethEnd{ns: b.sw, name: "pifrom"}, true); err != nil {
		return nil, err
	}
	if err := makeVeth(vethEnd{ns: to, name: "eth0", addr: netPITo, mac: toMAC}, vethEnd{ns: b.sw, name: "pito"}, true); err != nil {
		return nil, err
	}
	ports := map[string]uint32{}
	for _, port := range []string{"pifrom", "pito"} {
		if err := b.db.AddPort(ctx, br, port, "", nil); err != nil {
			return nil, err
		}
		n, err := b.db.OFPort(ctx, port)
		if err != nil {
			return nil, err
		}
		ports[port] = n
	}
	// A static neighbour: no ARP, so every probe is one packet.
	h, err := netlinkIn(from)
	if err != nil {
		return nil, fmt.Errorf("neighbour: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return nil, fmt.Errorf("neighbour: %w", err)
	}
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: netPITo.Addr().AsSlice(), HardwareAddr: toMAC}); err != nil {
		return nil, fmt.Errorf("neighbour: %w", err)
	}

	var send net.Conn
	var recv net.PacketConn
	dst := netip.AddrPortFrom(netPITo.Addr(), packetInPort).String()
	if err := netconf.InNetNS(to, func() (err error) { recv, err = net.ListenPacket("udp", dst); return err }); err != nil {
		return nil, fmt.Errorf("probe receiver: %w", err)
	}
	defer recv.Close()
	if err := netconf.InNetNS(from, func() (err error) { send, err = net.Dial("udp", dst); return err }); err != nil {
		return nil, fmt.Errorf("probe sender: %w", err)
	}
	defer send.Close()

	// Answered on a goroutine of its own, as the controller answers
	// echoes: OnPacketIn must not block the connection's reader.
	out := []ofp.Action{&ofp.ActionOutput{Port: ports["pito"]}}
	ctl.OnPacketIn(func(pi *ofp.PacketIn) {
		go ctl.Send(ctx, &ofp.PacketOut{BufferID: ofp.NoBuffer, InPort: ports["pifrom"], Actions: out, Data: pi.Data})
	})
	defer ctl.OnPacketIn(nil)
	flow := func(a ofp.Action) []controller.Flow {
		return []controller.Flow{{Table: 0, Priority: 100,
			Match:        ofp.Match{Fields: []ofp.OXM{ofp.FieldInPort.Uint(uint64(ports["pifrom"]))}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(a)}}}
	}
	r := &packetInResult{}
	type mode struct {
		flows []controller.Flow
		got   *sample
	}
	modes := []mode{
		{flow(&ofp.ActionOutput{Port: ofp.PortController, MaxLen: ofp.MaxLenNoBuffer}), &r.viaController},
		{flow(&ofp.ActionOutput{Port: ports["pito"]}), &r.direct},
	}
	seq := uint64(0)
	for range netRuns {
		for _, m := range modes {
			ctl.SetDesired(m.flows, nil)
			if err := ctl.Sync(ctx); err != nil {
				return nil, err
			}
			// Lets the datapath drop flows cached from the other mode.
			time.Sleep(100 * time.Millisecond)
			for i := range probesPerRun + 3 {
				seq++
				d, ok, err := udpProbe(send, recv, seq)
				if err != nil {
					return nil, err
				}
				switch {
				case i < 3: // warm-up
				case !ok:
					r.lost++
				default:
					*m.got = append(*m.got, d)
				}
			}
		}
	}
	if len(r.viaController) < netRuns*probesPerRun/2 {
		return nil, fmt.Errorf("PACKET_IN: %d of %d probes arrived", len(r.viaController), netRuns*probesPerRun)
	}
	return r, nil
}

// udpProbe sends seq and waits up to a second for it on recv.
func udpProbe(send net.Conn, recv net.PacketConn, seq uint64) (time.Duration, bool, error) {
	msg := []byte(strconv.FormatUint(seq, 10))
	buf := make([]byte, 64)
	start := time.Now()
	if _, err := send.Write(msg); err != nil {
		return 0, false, fmt.Errorf("probe: %w", err)
	}
	recv.SetReadDeadline(start.Add(time.Second))
	for {
		n, _, err := recv.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("probe: %w", err)
		}
		if string(buf[:n]) == string(msg) { // else a late earlier probe
			return time.Since(start), true, nil
		}
	}
}

// netReport prints the tables and returns the README section.
func netReport(paths []*netPath, fair map[int]*fairness, fc *floorCmp, fm *flowModsResults, pi *packetInResult) string {
	ours, normal, floor := paths[0], paths[1], paths[2]
	mbit := func(v float64) string { return fmt.Sprintf("%.0f Mbit/s", v/1e6) }
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
	x := func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	goal := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}

	// The range of the ratios of rounds taken side by side shows how
	// much the shared machine's load moves them.
	spread := func(n int, a, b func(i int) float64) string {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range n {
			lo, hi = math.Min(lo, a(i)/b(i)), math.Max(hi, a(i)/b(i))
		}
		return fmt.Sprintf(" (%.2f–%.2f)", lo, hi)
	}
	// Paths are compared round by round: the median of the rounds' ratios.
	paired := func(n int, a, b func(i int) float64) float64 {
		rs := make([]float64, n)
		for i := range rs {
			rs[i] = a(i) / b(i)
		}
		return medianFloat(rs)
	}
	rttVs := func(p, q *netPath) float64 {
		return paired(pingRounds, func(i int) float64 { return float64(p.rtt[i]) }, func(i int) float64 { return float64(q.rtt[i]) })
	}
	tcpVs := func(p, q *netPath) float64 {
		return paired(netRuns, func(i int) float64 { return p.tcp[i] }, func(i int) float64 { return q.tcp[i] })
	}
	rttRatio := func(p *netPath) float64 { return rttVs(p, normal) }
	tcpRatio := func(p *netPath) float64 { return tcpVs(p, normal) }
	paths1 := newTable("chute → LAN host", "RTT median", "RTT p90", "TCP median", "RTT vs NORMAL (per round)", "TCP vs NORMAL (per round)")
	for _, p := range paths {
		paths1.add(p.name, us(p.pings.median()), us(p.pings.p90()), mbit(medianFloat(p.tcp)),
			x(rttRatio(p))+spread(pingRounds, func(i int) float64 { return float64(p.rtt[i]) }, func(i int) float64 { return float64(normal.rtt[i]) }),
			x(tcpRatio(p))+spread(netRuns, func(i int) float64 { return p.tcp[i] }, func(i int) float64 { return normal.tcp[i] }))
	}
	rtt6Vs := func(p, q *netPath) float64 {
		return paired(len(p.rtt6), func(i int) float64 { return float64(p.rtt6[i]) }, func(i int) float64 { return float64(q.rtt6[i]) })
	}
	tcp6Vs := func(p, q *netPath) float64 {
		return paired(len(p.tcp6), func(i int) float64 { return p.tcp6[i] }, func(i int) float64 { return q.tcp6[i] })
	}
	// The floor over IPv6 is the one on ours' ports (fc.floor).
	floor6 := fc.floor
	paths6 := newTable("chute → LAN host over IPv6", "RTT median", "RTT p90", "TCP median", "RTT vs conntrack floor (per round)", "TCP vs conntrack floor (per turn pair)")
	for _, p := range []*netPath{ours, floor6} {
		paths6.add(p.name, us(p.pings6.median()), us(p.pings6.p90()), mbit(medianFloat(p.tcp6)),
			x(rtt6Vs(p, floor6))+spread(len(p.rtt6), func(i int) float64 { return float64(p.rtt6[i]) }, func(i int) float64 { return float64(floor6.rtt6[i]) }),
			x(tcp6Vs(p, floor6))+spread(len(p.tcp6), func(i int) float64 { return p.tcp6[i] }, func(i int) float64 { return floor6.tcp6[i] }))
	}
	alone := medianFloat(ours.tcp)
	fairT := newTable("chutes sending at once (ours)", "Jain median", "Jain min", "per chute median", "sum median", "sum vs one alone")
	var jain8 float64
	for _, n := range []int{2, fairChutes} {
		f := fair[n]
		if n == fairChutes {
			jain8 = medianFloat(f.jain)
		}
		fairT.add(strconv.Itoa(n), fmt.Sprintf("%.3f", medianFloat(f.jain)), fmt.Sprintf("%.3f", slices.Min(f.jain)),
			mbit(medianFloat(f.each)), mbit(medianFloat(f.sum)), x(medianFloat(f.sum)/alone))
	}
	jainMin := math.Min(medianFloat(fair[2].jain), jain8)

	perK := func(cpu time.Duration) time.Duration { return cpu * 1000 / flowModCount }
	rate := func(wall time.Duration) float64 { return flowModCount / wall.Seconds() }
	oursWall, oursCPU := fm.ours.median()
	_, oskenCPU := fm.osken.median()
	// The goal is against the faster of ovs-ofctl's two ways.
	ofctlWall, _ := fm.ofctl.median()
	ofctlName := fm.ofctl.name
	if w, _ := fm.bundle.median(); w < ofctlWall {
		ofctlWall, ofctlName = w, fm.bundle.name
	}
	fmT := newTable(fmt.Sprintf("%d flow-mods + barrier", flowModCount), "wall median", "flow-mods/s", "CPU per 1000", "rate vs "+ofctlName, "CPU vs os-ken")
	for _, r := range []*flowModResult{&fm.ours, &fm.readBack, &fm.osken, &fm.ofctl, &fm.bundle} {
		w, c := r.median()
		rateCell, vs := fmt.Sprintf("%.0f", rate(w)), x(rate(w)/rate(ofctlWall))
		if r == &fm.readBack { // reads flows, sends no flow-mods
			rateCell, vs = "-", "-"
		}
		fmT.add(r.name, ms(w), rateCell, ms(perK(c)), vs, x(float64(c)/float64(oskenCPU)))
	}

	piT := newTable("UDP probe, one way across the bridge", "n", "median", "p90")
	piT.add("flow → CONTROLLER, OnPacketIn → PACKET_OUT", strconv.Itoa(len(pi.viaController)), us(pi.viaController.median()), us(pi.viaController.p90()))
	piT.add("flow → output port (no controller)", strconv.Itoa(len(pi.direct)), us(pi.direct.median()), us(pi.direct.p90()))

	for _, t := range []*table{paths1, paths6, fairT, fmT, piT} {
		t.print(os.Stdout)
	}

	oursRTT := rttRatio(ours)
	oursTCP := tcpRatio(ours)
	rateRatio := rate(oursWall) / rate(ofctlWall)
	cpuRatio := float64(oursCPU) / float64(oskenCPU)
	var s strings.Builder
	fmt.Fprintf(&s, "Goals of the issue, all against peers measured in this run:\n\n")
	fmt.Fprintf(&s, "- RTT through our flows ≤ 1.05× NORMAL's: **%s** (%s: %s vs %s).\n", goal(oursRTT <= 1.05), x(oursRTT), us(ours.pings.median()), us(normal.pings.median()))
	fmt.Fprintf(&s, "- TCP through our flows ≥ 0.95× NORMAL's: **%s** (%s: %s vs %s).\n", goal(oursTCP >= 0.95), x(oursTCP), mbit(medianFloat(ours.tcp)), mbit(medianFloat(normal.tcp)))
	fmt.Fprintf(&s, "- For scale, the least any stateful pipeline does here (every packet through the tracker and its recirculation), on a bridge of its own, costs RTT %s and TCP %s of NORMAL's; ours against it: RTT %s, TCP %s (bridges apart differ by their ports' order in the datapath's polling, see below).\n",
		x(rttRatio(floor)), x(tcpRatio(floor)), x(rttVs(ours, floor)), x(tcpVs(ours, floor)))
	floorGoals, floorDetails := fc.report()
	s.WriteString(floorGoals)
	fmt.Fprintf(&s, "- Jain's index ≥ 0.99 with 2 and %d chutes: **%s** (%.3f and %.3f).\n", fairChutes, goal(jainMin >= 0.99), medianFloat(fair[2].jain), jain8)
	fmt.Fprintf(&s, "- Flow-mod rate ≥ 0.95× ovs-ofctl's (`%s`, the faster): **%s** (%s: %.0f vs %.0f flow-mods/s).\n",
		ofctlName, goal(rateRatio >= 0.95), x(rateRatio), rate(oursWall), rate(ofctlWall))
	fmt.Fprintf(&s, "- Controller CPU per flow-mod ≤ 0.1× os-ken's: **%s** (%s: %s vs %s per 1000).\n\n", goal(cpuRatio <= 0.1), x(cpuRatio), ms(perK(oursCPU)), ms(perK(oskenCPU)))
	for _, t := range []*table{paths1, paths6, fairT, fmT, piT} {
		s.WriteString(t.markdown() + "\n")
	}
	s.WriteString(floorDetails + "\n")
	fmt.Fprintf(&s, "The datapath's flows of 3 IPv6 echo requests, each path alone on a flushed datapath (`ovs-appctl dpctl/dump-flows --names`, statistics left out), what each packet costs the switch:\n\n")
	for _, p := range []*netPath{ours, floor6} {
		fmt.Fprintf(&s, "%s:\n\n```\n%s\n```\n\n", p.name, strings.Join(p.megaflows6, "\n"))
	}
	fmt.Fprintf(&s, `How it is measured (%d rounds of everything, round robin, so a loaded moment hits all contenders alike):

- One private Open vSwitch (userspace netdev datapath; this kernel has no
  openvswitch module) in a namespace of its own holds every OVS bridge.
  Chutes, LAN hosts and the PACKET_IN hosts are namespaces with veths,
  TEST-NET addresses only; nothing touches the host's interfaces.
- Ours: sdn.Open with the LAN on a bridge port and the gateway at %s,
  %d chutes attached with `+"`lan: [{ip: %s}]`"+` (conntrack, per-chute
  policy, no meters). NORMAL: a second bridge of the same OVS, fail_mode
  secure, one `+"`actions=NORMAL`"+` flow. Minimal conntrack pipeline: a
  third one, ARP by NORMAL, every IPv4 packet `+"`ct(zone=5,table=1)`"+`, then
  the chute's new connections `+"`ct(commit)`"+` and output, established ones
  output both ways. Linux bridge: in a namespace of its
  own, once with TX offload off on every veth end (as on the OVS paths),
  once at the kernel's defaults.
- RTT: `+"`busybox ping -c %d -i 0.01`"+` from the chute, %d rounds, every
  path once per round, each going first in turn. The ratio is the median
  over rounds of a round's median against NORMAL's in the same round; the
  RTT columns are over all pings.
- TCP: Go senders in the chutes, a Go receiver on the LAN host, %s per
  run, counted by the receiver after the first %s; the ratio is the
  median of the rounds' ratios, as for RTT. Fairness: %d and 2 of
  ours' chutes at once, equal weights, no meters; Jain's index of their
  rates per round, and their sum against one chute alone.
- IPv6: ours and the minimal conntrack pipeline (on ours' ports, its
  packets marked) only, the goal being against the latter: the rounds and
  turns against the floor above (IPv4 and IPv6 alternating) to the LAN
  host's 2001:db8:77::20, the chutes' /64 on its link; the IPv6 table is
  over those rounds' echoes and turns' rates.
- Flow-mods: the same %d flows (table 0, priority 100,
  ip,nw_dst=198.18.X.Y/32, actions=output:1) into an emptied bridge of
  the same OVS, confirmed by a barrier. Ours: `+"`SetDesired`"+` (building the
  flows included) + `+"`Sync`"+` called right after it, as the daemon does,
  wall and process CPU (getrusage, RUSAGE_SELF: the controller runs in
  the bench process) around both. Sync's reconcile reads the (empty)
  bridge back, sends the flows and a barrier; the reconcile SetDesired
  triggers waits a few ms, finds that confirmed and is skipped. The
  second row is one more Sync with nothing to change, which reads the
  %d flows back (it would also wait for a triggered reconcile that had
  not been skipped, and show its cost). os-ken:
  the app in bench/oskenapp, from the features reply to the barrier
  reply, its own CPU; the interpreter started once, outside the timing.
  ovs-ofctl: `+"`add-flows`"+` of a file, process start to exit, its CPU from
  rusage; plain, it waits for a barrier reply after every flow_mod, so it
  measures round trips more than OVS; with `+"`--bundle`"+` it sends all of
  them in one bundle and waits for the commit. Every run is checked with
  dump-aggregate.
- PACKET_IN: UDP probes between two namespaces on ours' bridge. With a
  flow sending them to the controller, OnPacketIn answers with a
  PACKET_OUT to the other port; the time is from the sender's write to the
  receiver's read, both in the bench process. The direct row is the same
  probe through a plain output flow.
`, netRuns, netLANGW.Addr(), fairChutes, netLANHost.Addr(), pingCount, pingRounds, transferTime, transferWarm, fairChutes, flowModCount, flowModCount)
	if pi.lost > 0 {
		fmt.Fprintf(&s, "\n%d PACKET_IN probes were lost (not counted).\n", pi.lost)
	}
	return s.String()
}
