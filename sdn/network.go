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
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

// ErrNotAttached is returned (wrapped) for a chute the network does not
// know.
var ErrNotAttached = errors.New("chute not attached")

// chuteIDKey is the external_ids key naming a port's chute in OVSDB.
const chuteIDKey = "paradrop-chute"

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
	// LANPorts are existing interfaces added to the bridge as the LAN.
	LANPorts []string
	// LANAddr is the gateway's address on the LAN, on the internal port;
	// invalid for none.
	LANAddr netip.Prefix
	// WAN is the uplink that chute traffic may leave by, masqueraded;
	// "" (the default) lets no chute traffic leave the host.
	WAN string
	// NetNS is the path of the network namespace the gateway's side lives
	// in (bridge ports, addresses, nftables, controller socket); "" is the
	// caller's. Tests run whole gateways in namespaces of their own.
	NetNS string
	// RepairInterval is how often the network checks that Open vSwitch
	// runs and the bridge's ports and addresses are as they should be
	// (after a vswitchd restart, say); default 5s.
	RepairInterval time.Duration
	Logf           func(format string, args ...any)
}

// Chute is what the network needs to know of a chute. The manager keeps
// MAC and IP (see AddressFor, netconf.MACFor) for the chute's lifetime.
type Chute struct {
	Name      string
	NetNS     string // path of the chute's bind-mounted network namespace
	MAC       net.HardwareAddr
	IP        netip.Addr
	Net       Policy
	Bandwidth Bandwidth
}

// Rule is a flow as people read it, with the switch's counters.
type Rule struct {
	Chute     string `json:"chute,omitempty"` // "" for the gateway's own rules
	Table     uint8  `json:"table"`
	Priority  uint16 `json:"priority"`
	Cookie    uint64 `json:"cookie"`
	Rule      string `json:"rule"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	Installed bool   `json:"installed"` // the switch holds it
}

// Counters is a chute's traffic as the switch counted it: Tx what the chute
// sent, Rx what was delivered to it, before meters drop anything.
type Counters struct {
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
}

// AddressFor returns the address of chute slot slot (0, 1, ...) in subnet:
// .10 plus slot. It returns the zero Addr if the slot is outside the
// subnet (or it is not IPv4).
func AddressFor(subnet netip.Prefix, slot int) netip.Addr {
	if !subnet.IsValid() || !subnet.Addr().Is4() || slot < 0 || subnet.Bits() > 24 {
		return netip.Addr{}
	}
	size := uint64(1) << (32 - subnet.Bits())
	host := uint64(10 + slot)
	if host >= size-1 { // the broadcast address and beyond
		return netip.Addr{}
	}
	b := subnet.Masked().Addr().As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]) + host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Network is the chutes' network. Its methods are safe for concurrent use.
type Network struct {
	cfg     Config
	gateway netip.Addr
	ovsDir  string // our own OVS's directory; "" when using another one
	daemon  *ovs.Daemon
	ctl     *controller.Controller
	cancel  context.CancelFunc
	done    sync.WaitGroup

	// opMu serializes the operations that change the bridge.
	opMu sync.Mutex

	mu     sync.Mutex
	db     *ovsdb.Client
	topo   topology
	chutes map[string]*attached
	last   *derived
	names  map[uint32]string // chute id to name, for Flows
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
	switch {
	case !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 29:
		return nil, fmt.Errorf("chute subnet %s is not an IPv4 prefix of at most /29", cfg.Subnet)
	case cfg.LANAddr.IsValid() && (!cfg.LANAddr.Addr().Is4() || cfg.LANAddr.Overlaps(cfg.Subnet)):
		return nil, fmt.Errorf("LAN address %s is not IPv4 outside the chute subnet %s", cfg.LANAddr, cfg.Subnet)
	case cfg.DataDir == "" && (cfg.OVSDB == "" || cfg.NetNS != ""):
		return nil, errors.New("no data directory for our own Open vSwitch")
	}

	n := &Network{cfg: cfg, gateway: cfg.Subnet.Addr().Next(), chutes: map[string]*attached{}}
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
	var addr net.Addr
	if err := n.inGW(func() (err error) { addr, err = n.ctl.Listen(); return err }); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := n.inGW(func() error { return ensureGuard(guardTable(cfg.Bridge), cfg.Bridge, cfg.Subnet, cfg.WAN) }); err != nil {
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
	n.done.Add(1)
	go n.repairLoop(runCtx, "tcp:"+addr.String())
	return n, nil
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
	err := db.EnsureBridge(ctx, ovsdb.BridgeConfig{
		Name: cfg.Bridge, DatapathType: n.datapathType(), DatapathID: cfg.DatapathID,
		Protocols: []string{"OpenFlow13"}, FailMode: "secure", DisableInBand: true, Controller: target,
	})
	if err != nil {
		return err
	}
	if _, err := db.OFPort(ctx, cfg.Bridge); err != nil {
		return fmt.Errorf("bridge's internal port: %w", err)
	}
	mac, err := db.InterfaceMAC(ctx, cfg.Bridge)
	if err != nil {
		return err
	}
	addrs := []netip.Prefix{netip.PrefixFrom(n.gateway, cfg.Subnet.Bits())}
	if cfg.LANAddr.IsValid() {
		addrs = append(addrs, cfg.LANAddr)
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
	topo := topology{Subnet: cfg.Subnet, Gateway: n.gateway, LANAddr: cfg.LANAddr, GatewayMAC: mac, LANPorts: lanPorts}

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
	if n.last != nil && reflect.DeepEqual(d, n.last) {
		return false
	}
	n.last, n.names = d, names
	n.ctl.SetDesired(d.Flows, d.Meters)
	return true
}

// repairLoop brings the bridge back after Open vSwitch restarts: it
// restarts our own OVS if it died, redials OVSDB, re-creates the internal
// port's addresses (a new vswitchd makes a new device) and refreshes port
// numbers and flows. The controller re-installs the flows by itself once
// the switch reconnects.
func (n *Network) repairLoop(ctx context.Context, target string) {
	defer n.done.Done()
	t := time.NewTicker(n.cfg.RepairInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := n.repair(ctx, target); err != nil && ctx.Err() == nil {
			n.cfg.Logf("sdn: repair: %v", err)
		}
	}
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

// Attach connects chute c to the bridge, or corrects its connection: the
// veth with eth0 in c.NetNS (address c.IP, default route via the gateway,
// on-link routes to the LAN), the bridge port, and the flows for what c
// declares, installed before it returns.
func (n *Network) Attach(ctx context.Context, c Chute) error {
	if err := n.attach(ctx, c, false); err != nil {
		return fmt.Errorf("attach chute %s: %w", c.Name, err)
	}
	return nil
}

// Update applies a changed policy or bandwidth of an attached
// chute live: flows and meters are modified, connections allowed by both
// the old and the new policy survive.
func (n *Network) Update(ctx context.Context, c Chute) error {
	if err := n.attach(ctx, c, true); err != nil {
		return fmt.Errorf("update chute %s: %w", c.Name, err)
	}
	return nil
}

func (n *Network) attach(ctx context.Context, c Chute, update bool) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	if err := n.check(c, update); err != nil {
		return err
	}
	hostIf := netconf.HostIfFor(c.Name)
	link := netconf.Link{HostIf: hostIf, NetNS: c.NetNS, MAC: c.MAC,
		Addr: netip.PrefixFrom(c.IP, n.cfg.Subnet.Bits()), Gateway: n.gateway}
	if err := n.inGW(func() error { return netconf.EnsureLink(link) }); err != nil {
		return err
	}
	n.mu.Lock()
	topo, db := n.topo, n.db
	n.mu.Unlock()
	if err := ensureOnLink(c.NetNS, onLink(topo, c.Net)); err != nil {
		return err
	}
	if err := db.AddPort(ctx, n.cfg.Bridge, hostIf, "", map[string]string{chuteIDKey: c.Name}); err != nil {
		return err
	}
	port, err := db.OFPort(ctx, hostIf)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.chutes[c.Name] = &attached{Chute: c, Port: port}
	n.mu.Unlock()
	return n.apply(ctx)
}

// check refuses a chute whose addresses or LAN-facing ports clash with the
// gateway's or another chute's.
func (n *Network) check(c Chute, update bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, known := n.chutes[c.Name]
	switch {
	case c.Name == "":
		return errors.New("no name")
	case update && !known:
		return ErrNotAttached
	case c.NetNS == "":
		return errors.New("no network namespace")
	case len(c.MAC) != 6:
		return fmt.Errorf("MAC %s is not 6 bytes", c.MAC)
	case !c.IP.Is4() || !n.cfg.Subnet.Contains(c.IP) || c.IP == n.gateway ||
		c.IP == n.cfg.Subnet.Addr() || hostIndex(n.cfg.Subnet, c.IP) == 1<<(32-n.cfg.Subnet.Bits())-1:
		return fmt.Errorf("address %s is not a chute address in %s", c.IP, n.cfg.Subnet)
	}
	if err := c.Net.Check(); err != nil {
		return err
	}
	type key struct{ addr, proto string }
	taken := map[key]string{}
	claims := func(o Chute) []key {
		var ks []key
		for _, e := range o.Net.Expose {
			ks = append(ks, key{fmt.Sprint(e.GatewayPort), e.Proto.String()})
		}
		for _, r := range o.Net.Redirect {
			ks = append(ks, key{r.To.String(), r.Proto.String()})
		}
		return ks
	}
	for name, o := range n.chutes {
		if name == c.Name {
			continue
		}
		if o.IP == c.IP || slices.Equal(o.MAC, c.MAC) {
			return fmt.Errorf("address %s or MAC %s is chute %s's", c.IP, c.MAC, name)
		}
		for _, k := range claims(o.Chute) {
			taken[k] = name
		}
	}
	for _, k := range claims(c) {
		if other, ok := taken[k]; ok {
			return fmt.Errorf("%s/%s is already exposed or redirected by chute %s", k.addr, k.proto, other)
		}
	}
	return nil
}

// Detach removes chute name's flows, bridge port and veth. Detaching an
// unknown chute cleans up whatever is left of it by name.
func (n *Network) Detach(ctx context.Context, name string) error {
	if err := n.detach(ctx, name); err != nil {
		return fmt.Errorf("detach chute %s: %w", name, err)
	}
	return nil
}

func (n *Network) detach(ctx context.Context, name string) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.mu.Lock()
	delete(n.chutes, name)
	db := n.db
	n.mu.Unlock()
	// Flows first, so no flow names a port that is gone or reused.
	if err := n.apply(ctx); err != nil {
		return err
	}
	hostIf := netconf.HostIfFor(name)
	if err := db.DeletePort(ctx, n.cfg.Bridge, hostIf); err != nil {
		return err
	}
	return n.inGW(func() error { return netconf.DeleteLink(hostIf) })
}

// Flows returns the rules the switch should hold for chute (all of them,
// the gateway's own included, for ""), with their counters.
func (n *Network) Flows(ctx context.Context, chute string) ([]Rule, error) {
	rules, err := n.flows(ctx, chute)
	if err != nil {
		return nil, fmt.Errorf("flows of %q: %w", chute, err)
	}
	return rules, nil
}

func (n *Network) flows(ctx context.Context, chute string) ([]Rule, error) {
	n.mu.Lock()
	d, names := n.last, n.names
	var cookie, mask uint64
	if chute != "" {
		c, ok := n.chutes[chute]
		if !ok {
			n.mu.Unlock()
			return nil, ErrNotAttached
		}
		cookie, mask = uint64(c.id(n.topo.Subnet))<<32, cookieMask
	}
	n.mu.Unlock()
	stats, err := n.ctl.FlowStats(ctx, cookie, mask)
	if err != nil {
		return nil, err
	}
	type count struct{ packets, bytes uint64 }
	counts := map[uint64]count{}
	for _, s := range stats {
		c := counts[s.Cookie]
		counts[s.Cookie] = count{c.packets + s.Packets, c.bytes + s.Bytes}
	}
	var rules []Rule
	for _, f := range d.Flows {
		if f.Cookie&mask != cookie {
			continue
		}
		c, installed := counts[f.Cookie]
		rules = append(rules, Rule{
			Chute: names[uint32(f.Cookie>>32)], Table: f.Table, Priority: f.Priority, Cookie: f.Cookie,
			Rule: f.Note, Packets: c.packets, Bytes: c.bytes, Installed: installed,
		})
	}
	sort.SliceStable(rules, func(i, j int) bool {
		a, b := rules[i], rules[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Priority > b.Priority
	})
	return rules, nil
}

// Counters returns chute's traffic counters, from its flows' statistics.
func (n *Network) Counters(ctx context.Context, chute string) (Counters, error) {
	n.mu.Lock()
	c, ok := n.chutes[chute]
	d := n.last
	var id uint32
	if ok {
		id = c.id(n.topo.Subnet)
	}
	n.mu.Unlock()
	if !ok {
		return Counters{}, fmt.Errorf("counters of %q: %w", chute, ErrNotAttached)
	}
	stats, err := n.ctl.FlowStats(ctx, uint64(id)<<32, cookieMask)
	if err != nil {
		return Counters{}, fmt.Errorf("counters of %q: %w", chute, err)
	}
	var cs Counters
	for _, s := range stats {
		if d.TX[s.Cookie] {
			cs.TxBytes += s.Bytes
			cs.TxPackets += s.Packets
		}
		if d.RX[s.Cookie] {
			cs.RxBytes += s.Bytes
			cs.RxPackets += s.Packets
		}
	}
	return cs, nil
}

// ensureOnLink makes prefixes the on-link routes (ours: protocol static,
// scope link) of eth0 in the chute's namespace, so the chute resolves LAN
// hosts itself; routes of ours it no longer needs are removed.
func ensureOnLink(nsPath string, prefixes []netip.Prefix) error {
	err := netconf.InNetNS(nsPath, func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, p := range prefixes {
			want[p.String()] = true
		}
		routes, err := netlink.RouteList(link, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Protocol == unix.RTPROT_STATIC && r.Scope == netlink.SCOPE_LINK && r.Dst != nil && !want[r.Dst.String()] {
				if err := netlink.RouteDel(&r); err != nil {
					return err
				}
			}
		}
		for _, p := range prefixes {
			dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}
			if err := netlink.RouteReplace(r); err != nil {
				return fmt.Errorf("route %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("on-link routes in %s: %w", nsPath, err)
	}
	return nil
}
