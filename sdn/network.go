// Package sdn owns the chutes' network: the Open vSwitch bridge they are
// attached to, the controller's desired flows derived from each chute's
// Policy (wan, lan, expose, redirect, peers) and Bandwidth, which the chute
// manager makes from its manifest, and the gateway's plumbing around it
// (the bridge's internal port addresses, the WAN masquerade and the
// forward guard).
//
// The bridge is a default-deny switch programmed only by our in-process
// OpenFlow 1.3 controller (fail_mode secure). Chutes and the LAN share it;
// the gateway's kernel sits on its internal port with the chute subnet's
// .1 and the LAN address. The switch delivers chute↔LAN and chute↔chute
// traffic itself; only WAN traffic goes through the host's routing, where
// an nftables guard lets chute traffic leave by the WAN interface and no
// other. See flows.go for the pipeline.
//
// The chute manager calls Attach when a chute's namespace exists, Update
// when its policy or bandwidth changes, Detach when it goes away; Flows and Counters
// report what the switch holds and counts.
package sdn

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"paradrop/netconf"
	"paradrop/sdn/controller"
	"paradrop/sdn/ovs"
	"paradrop/sdn/ovsdb"
)

// Defaults of Config.
const (
	DefaultBridge     = "pdbr0"
	DefaultDatapathID = "0000000000007064" // "pd"
	DefaultController = "127.0.0.1:6653"
	DefaultOVSDB      = "unix:/var/run/openvswitch/db.sock"
)

// DefaultSubnet is the chute subnet unless configured.
var DefaultSubnet = netip.MustParsePrefix("10.131.0.0/24")

// Config configures the network; zero fields take the defaults.
type Config struct {
	// DataDir holds our own Open vSwitch (DataDir/ovs) when none is
	// given or running.
	DataDir string
	// OVSDB is the OVSDB address of an Open vSwitch to use; "" means the
	// system's (DefaultOVSDB) if it answers, else our own. With NetNS set,
	// "" always means our own, started in that namespace.
	OVSDB string
	// Bridge is the bridge's name; default DefaultBridge.
	Bridge string
	// DatapathID pins the bridge's datapath id, 16 hex digits.
	DatapathID string
	// Controller is the controller's listen address; default
	// DefaultController.
	Controller string
	// Subnet is the chute subnet; the gateway's internal port gets .1.
	Subnet netip.Prefix
	// Subnet6 is the chutes' IPv6 /64, the gateway's internal port gets
	// ::1 in it and each chute the address at its IPv4 host index; default
	// a unique local prefix derived from the machine id, DatapathID and
	// Subnet (ULAFor): stable, and unlike another gateway's.
	Subnet6 netip.Prefix
	// Prefix6 is the IPv6 prefix delegated to the gateway (a /64, or a
	// shorter one such as a /56); invalid for none. The chutes take its
	// first /64 (Global6): each a global address at its host index beside
	// its ULA, the gateway ::1. With WAN, chutes with wan reach the WAN
	// from it over IPv6, routed without NAT (the WAN must route the
	// prefix to the gateway, as an ISP does a delegated one).
	Prefix6 netip.Prefix
	// LANPorts are existing interfaces added to the bridge as the LAN.
	LANPorts []string
	// LANHosts name the LAN port (one of LANPorts) of LAN hosts, by MAC
	// (net.HardwareAddr.String): traffic to them leaves by that port
	// alone, whatever their ARP says. Other hosts' ports are learned.
	LANHosts map[string]string
	// LANAddr is the gateway's address on the LAN, on the internal port;
	// invalid for none.
	LANAddr netip.Prefix
	// LANAddr6 is the gateway's IPv6 address on the LAN, on the internal
	// port; invalid for none. LAN users reach exposed ports at it as at
	// LANAddr, and chutes answering them (expose, IPv6 redirect) resolve
	// the hosts of its prefix: IPv6 redirects need it.
	LANAddr6 netip.Prefix
	// WAN is the uplink that chute traffic may leave by, IPv4
	// masqueraded, IPv6 from Prefix6 routed (IPv6 forwarding is turned on
	// then); "" (the default) lets no chute traffic leave the host.
	WAN string
	// NetNS is the path of the network namespace the gateway's side lives
	// in (bridge ports, addresses, nftables, controller socket); "" is the
	// caller's. Tests run whole gateways in namespaces of their own.
	NetNS string
	// APIPort is the TCP port at which chutes reach the daemon's API for
	// them, at the gateway's address in Subnet (ListenAPI): the flows and
	// the guard let chutes, and nothing else, connect to it. 0 for none.
	APIPort int
	// RepairInterval is how often the network checks that Open vSwitch
	// runs and the bridge's ports and addresses are as they should be
	// (after a vswitchd restart, say); default 5s.
	RepairInterval time.Duration
	Logf           func(format string, args ...any)

	// HostWindow is how recently a LAN host must have been seen to be
	// active (hosts.go); default DefaultHostWindow.
	HostWindow time.Duration
}

// Network is the chutes' network. Its methods are safe for concurrent use.
type Network struct {
	cfg     Config
	gateway netip.Addr
	// gateway6 is the gateway's address in Subnet6.
	gateway6 netip.Addr
	ovsDir   string // our own OVS's directory; "" when using another one
	daemon   *ovs.Daemon
	ctl      *controller.Controller
	cancel   context.CancelFunc
	done     sync.WaitGroup

	// global6 is the chutes' /64 of Prefix6; invalid without one.
	global6 netip.Prefix

	// opMu serializes the operations that change the bridge.
	opMu sync.Mutex

	mu     sync.Mutex
	db     *ovsdb.Client
	topo   topology
	chutes map[string]*attached
	last   *derived
	// learned signals LAN hosts learned since the flows were derived.
	learned chan struct{}
	names   map[uint32]string // chute id to name, for Flows
	// seen is the LAN hosts' activity, by MAC (hosts.go); clock is the
	// time, time.Now when nil.
	seen  map[string]*seenHost
	clock func() time.Time

	// counters is what AllCounters last summed, so that it dumps only the
	// flows of chutes whose totals moved (report.go).
	counters counterCache
}

// Open finds or starts Open vSwitch, sets up the bridge, the gateway's
// addresses, the LAN ports and the nftables guard (and masquerade, with a
// WAN), starts the controller and installs the base flows.
func Open(ctx context.Context, cfg Config) (*Network, error) {
	n, err := open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open network: %w", err)
	}
	return n, nil
}

func open(ctx context.Context, cfg Config) (_ *Network, err error) {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.DatapathID == "" {
		cfg.DatapathID = DefaultDatapathID
	}
	if cfg.Controller == "" {
		cfg.Controller = DefaultController
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.RepairInterval <= 0 {
		cfg.RepairInterval = 5 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if !cfg.Subnet6.IsValid() {
		cfg.Subnet6 = ULAFor(machineID() + " " + cfg.DatapathID + " " + cfg.Subnet.String())
	}
	cfg.Subnet6 = cfg.Subnet6.Masked()
	switch {
	case !cfg.Subnet6.Addr().Is6() || cfg.Subnet6.Addr().Is4In6() || cfg.Subnet6.Bits() != 64:
		return nil, fmt.Errorf("chute IPv6 subnet %s is not an IPv6 /64", cfg.Subnet6)
	case !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 29:
		return nil, fmt.Errorf("chute subnet %s is not an IPv4 prefix of at most /29", cfg.Subnet)
	case cfg.LANAddr.IsValid() && (!cfg.LANAddr.Addr().Is4() || cfg.LANAddr.Overlaps(cfg.Subnet)):
		return nil, fmt.Errorf("LAN address %s is not IPv4 outside the chute subnet %s", cfg.LANAddr, cfg.Subnet)
	case checkPrefix6(cfg.Prefix6, cfg.Subnet6) != nil:
		return nil, checkPrefix6(cfg.Prefix6, cfg.Subnet6)
	case checkLANAddr6(cfg.LANAddr6, cfg.Subnet6, globalSubnet6(cfg.Prefix6)) != nil:
		return nil, checkLANAddr6(cfg.LANAddr6, cfg.Subnet6, globalSubnet6(cfg.Prefix6))
	case checkLANHosts(cfg) != nil:
		return nil, checkLANHosts(cfg)
	case cfg.DataDir == "" && (cfg.OVSDB == "" || cfg.NetNS != ""):
		return nil, errors.New("no data directory for our own Open vSwitch")
	}

	n := &Network{cfg: cfg, gateway: cfg.Subnet.Addr().Next(), gateway6: gateway6(cfg.Subnet6), global6: globalSubnet6(cfg.Prefix6), chutes: map[string]*attached{}, learned: make(chan struct{}, 1),
		seen: map[string]*seenHost{}}
	if err := n.findOVS(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.stopOVS(context.WithoutCancel(ctx))
		}
	}()
	if n.db, err = ovsdb.Dial(ctx, n.daemon.DBSocket()); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.db.Close()
		}
	}()

	n.ctl = controller.New(controller.Config{Listen: cfg.Controller, Logf: cfg.Logf})
	n.ctl.OnPacketIn(n.learn)
	var addr net.Addr
	if err := n.inGW(func() (err error) { addr, err = n.ctl.Listen(); return err }); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := n.inGW(func() error {
		return ensureGuard(guardTable(cfg.Bridge), cfg.Bridge, cfg.Subnet, cfg.Subnet6, n.global6, cfg.WAN, n.apiAddr(), n.apiAddr6())
	}); err != nil {
		return nil, err
	}
	masq := natTable(cfg.Bridge)
	if err := n.inGW(func() error {
		if cfg.WAN == "" {
			return netconf.DeleteMasquerade(masq)
		}
		return netconf.EnsureMasquerade(masq, cfg.Subnet, cfg.WAN)
	}); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	n.done.Add(1)
	go func() {
		defer n.done.Done()
		if err := n.ctl.Run(runCtx); err != nil {
			cfg.Logf("sdn: controller: %v", err)
		}
	}()
	defer func() {
		if err != nil {
			cancel()
			n.done.Wait()
		}
	}()
	if err := n.setupBridge(ctx, "tcp:"+addr.String()); err != nil {
		return nil, err
	}
	if err := n.apply(ctx); err != nil {
		return nil, err
	}
	n.done.Add(3)
	go n.repairLoop(runCtx, "tcp:"+addr.String())
	go n.applyLearned(runCtx)
	go n.watchHosts(runCtx)
	return n, nil
}

// apiAddr is where chutes reach the API; invalid for none.
func (n *Network) apiAddr() netip.AddrPort {
	if n.cfg.APIPort <= 0 || n.cfg.APIPort > 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(n.gateway, uint16(n.cfg.APIPort))
}

// apiAddr6 is where chutes reach the API over IPv6: the gateway's
// address in Subnet6; invalid for none.
func (n *Network) apiAddr6() netip.AddrPort {
	if !n.apiAddr().IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(n.gateway6, n.apiAddr().Port())
}

// ListenAPI listens at the gateway's address in the chute subnet, port
// APIPort, in the gateway's namespace: the chutes' API, which only they
// may reach.
func (n *Network) ListenAPI() (net.Listener, error) {
	return n.listenAPI(n.apiAddr())
}

// ListenAPI6 is ListenAPI at the gateway's IPv6 address in Subnet6.
func (n *Network) ListenAPI6() (net.Listener, error) {
	return n.listenAPI(n.apiAddr6())
}

func (n *Network) listenAPI(addr netip.AddrPort) (net.Listener, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("chute API: port %d", n.cfg.APIPort)
	}
	var ln net.Listener
	err := n.inGW(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err })
	if err != nil {
		return nil, fmt.Errorf("chute API: %w", err)
	}
	return ln, nil
}

func guardTable(bridge string) string { return "pd_guard_" + bridge }
func natTable(bridge string) string   { return "pd_nat_" + bridge }

// inGW runs fn in the gateway's namespace.
func (n *Network) inGW(fn func() error) error {
	if n.cfg.NetNS == "" {
		return fn()
	}
	return netconf.InNetNS(n.cfg.NetNS, fn)
}

// findOVS uses the configured or the system's Open vSwitch, or runs our
// own. Our own is started in the gateway's namespace (its internal ports
// are created where ovs-vswitchd runs).
func (n *Network) findOVS(ctx context.Context) error {
	own := filepath.Join(n.cfg.DataDir, "ovs")
	addr := n.cfg.OVSDB
	if addr == "" && n.cfg.NetNS == "" {
		addr = DefaultOVSDB
	}
	return n.inGW(func() (err error) {
		if addr == "" {
			n.daemon, err = ovs.Start(ctx, own)
		} else {
			n.daemon, err = ovs.Find(ctx, addr, own)
		}
		if err == nil && n.daemon.DBSocket() != addr {
			n.ovsDir = own
		}
		return err
	})
}

func (n *Network) stopOVS(ctx context.Context) error {
	if n.ovsDir == "" {
		return nil
	}
	return n.daemon.Stop(ctx)
}

// apply derives the flows from the current state and makes the switch hold
// them, confirmed.
func (n *Network) apply(ctx context.Context) error {
	n.setDesired()
	if err := n.ctl.Sync(ctx); err != nil {
		return fmt.Errorf("program the bridge: %w", err)
	}
	return nil
}

// setDesired hands the derived flows to the controller if they changed;
// it reports whether they did.
func (n *Network) setDesired() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	chutes := make([]*attached, 0, len(n.chutes))
	names := map[uint32]string{}
	for _, c := range n.chutes {
		chutes = append(chutes, c)
		names[c.id(n.topo.Subnet)] = c.Name
	}
	sort.Slice(chutes, func(i, j int) bool { return chutes[i].Name < chutes[j].Name })
	d := derive(n.topo, chutes)
	changed := n.ctl.SetDesired(d.Flows, d.Meters)
	d.strip()
	n.last, n.names = d, names
	return changed
}

// Close stops the controller, and Open vSwitch if we started it. The bridge
// and the nftables guard stay: with no controller the bridge forwards
// nothing (fail_mode secure), and chute traffic still cannot leave.
func (n *Network) Close(ctx context.Context) error {
	n.cancel()
	n.done.Wait()
	n.mu.Lock()
	n.db.Close()
	n.mu.Unlock()
	if err := n.stopOVS(ctx); err != nil {
		return fmt.Errorf("close network: %w", err)
	}
	return nil
}
