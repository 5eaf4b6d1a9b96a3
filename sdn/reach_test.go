package sdn

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"paradrop/netconf"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ofsim"
)

// The reachability matrix: who can open what to whom, for every kind of
// rule, positive and negative. It runs against the simulator in every
// `go test` (TestMatrixSimulated) and against real Open vSwitch as root
// (TestReachability), which also checks that the two agree case by case.

// matrixChute is a chute of the matrix's gateway.
type matrixChute struct {
	name string
	slot int
	net  Policy
}

// matrixChutes are the matrix's chutes; lan2MAC is the MAC of LAN host
// lan2, which one chute names.
func matrixChutes(lan2MAC net.HardwareAddr) []matrixChute {
	lan1 := netip.PrefixFrom(lan1Addr, 32)
	return []matrixChute{
		{"web", 0, Policy{
			WAN:      true,
			LAN:      []LANRule{{Prefix: lan1, Ports: []uint16{554}}},
			Expose:   []Expose{{Port: 80, GatewayPort: 8080, Proto: TCP}, {Port: 5300, GatewayPort: 8083, Proto: UDP}},
			Redirect: []Redirect{{To: netip.AddrPortFrom(cloudIP, 80), Port: 8081, Proto: TCP}, {To: netip.AddrPortFrom(cloudIP, 123), Port: 5301, Proto: UDP}},
			Peers:    []string{"db"},
		}},
		{"db", 1, Policy{Peers: []string{"web"}}},
		{"lonely", 2, Policy{Peers: []string{"web"}}},
		// cam may reach lan1 on any port, so its answers to lan1's
		// request to an exposed port also match what it may start.
		{"cam", 3, Policy{
			LAN:    []LANRule{{Prefix: lan1}},
			Expose: []Expose{{Port: 80, GatewayPort: 8082, Proto: TCP}},
		}},
		{"scan", 4, Policy{LAN: []LANRule{{Prefix: netip.MustParsePrefix("198.51.100.20/31"), Ports: []uint16{554}}}}},
		{"bymac", 5, Policy{LAN: []LANRule{{MAC: lan2MAC}}}},
	}
}

// reachCase is one attempt: from opens to (host:port, or host for ping)
// with proto; at is the endpoint that must answer (to unless a NAT is on
// the way). by is the note of the flow that decides it in the simulator.
type reachCase struct {
	name     string
	from, to string
	proto    string // tcp (default), udp, udp3 (three datagrams of one flow before any answer), ping, or ack: a lone ACK as if answering a connection that does not exist
	at       string
	want     bool
	by       string
}

var reachCases = []reachCase{
	{name: "ping the gateway", from: "web", to: "gw", proto: "ping", want: true, by: "chute web may ping the gateway 10.131.0.1"},
	{name: "DNS at the gateway over UDP", from: "web", to: "gw:53", proto: "udp", want: true, by: "chute web may use DNS at the gateway 10.131.0.1:53/udp"},
	{name: "DNS at the gateway over TCP", from: "db", to: "gw:53", want: true, by: "chute db may use DNS at the gateway 10.131.0.1:53/tcp"},
	{name: "other gateway ports", from: "web", to: "gw:22", want: false, by: "chute web: other chutes denied"},
	{name: "the gateway connects to a chute", from: "gw", to: "web:81", want: true, by: "the gateway (10.131.0.1) may connect to chutes"},
	{name: "LAN host pings the gateway", from: "lan1", to: "gwlan", proto: "ping", want: true, by: "to the gateway's 198.51.100.1"},

	{name: "wan", from: "web", to: "cloud:80", want: true, by: "chute web may reach the WAN (routed and masqueraded by the gateway)"},
	{name: "no wan", from: "db", to: "cloud:80", want: false, by: "chute db: default deny"},

	{name: "declared LAN host and port", from: "web", to: "lan1:554", want: true, by: "chute web may reach LAN 198.51.100.20:554/tcp"},
	{name: "declared LAN host, other port", from: "web", to: "lan1:22", want: false, by: "chute web: undeclared LAN hosts denied"},
	{name: "undeclared LAN host", from: "web", to: "lan2:554", want: false, by: "chute web: undeclared LAN hosts denied"},
	{name: "declared LAN host by ports: no ping", from: "web", to: "lan1", proto: "ping", want: false, by: "chute web: undeclared LAN hosts denied"},
	{name: "declared LAN host, all ports", from: "cam", to: "lan1", proto: "ping", want: true, by: "chute cam may reach LAN 198.51.100.20"},
	// Every chute resolves the LAN itself (to answer exposed ports), so
	// one that may not reach a LAN host cannot even resolve it.
	{name: "chute without lan rules", from: "db", to: "lan1:554", want: false, by: "chute db: ARP for undeclared hosts dropped"},
	{name: "LAN prefix", from: "scan", to: "lan2:554", want: true, by: "chute scan may reach LAN 198.51.100.20/31:554/tcp"},
	{name: "LAN prefix over UDP", from: "scan", to: "lan1:554", proto: "udp", want: true, by: "chute scan may reach LAN 198.51.100.20/31:554/udp"},
	{name: "LAN prefix, other port", from: "scan", to: "lan1:22", want: false, by: "chute scan: undeclared LAN hosts denied"},
	{name: "LAN host by MAC", from: "bymac", to: "lan2:554", want: true, by: "chute bymac may reach LAN MAC "},
	{name: "LAN host by MAC, other host", from: "bymac", to: "lan1:554", want: false, by: "chute bymac: undeclared LAN hosts denied"},

	{name: "exposed port", from: "lan1", to: "gwlan:8080", at: "web:80", want: true, by: "LAN users reach chute web port 80/tcp at 198.51.100.1:8080"},
	{name: "exposed port, from the other LAN port", from: "lan2", to: "gwlan:8080", at: "web:80", want: true, by: "LAN users reach chute web port 80/tcp at 198.51.100.1:8080"},
	{name: "exposed by a chute that may reach the user", from: "lan1", to: "gwlan:8082", at: "cam:80", want: true, by: "LAN users reach chute cam port 80/tcp at 198.51.100.1:8082"},
	{name: "unexposed gateway port", from: "lan1", to: "gwlan:81", at: "web:81", want: false, by: "to the gateway's 198.51.100.1"},

	{name: "redirect", from: "lan1", to: "cloud:80", at: "web:8081", want: true, by: "LAN requests to 203.0.113.5:80/tcp answered by chute web port 8081"},

	// UDP through the DNAT: the datagrams after the first, sent before
	// any answer, are +new+dnat to the tracker (already translated), not
	// +est; then the answers, undone.
	{name: "exposed UDP port, three datagrams before an answer", from: "lan1", to: "gwlan:8083", at: "web:5300", proto: "udp3", want: true, by: "LAN users reach chute web port 5300/udp at 198.51.100.1:8083"},
	{name: "redirect over UDP, three datagrams before an answer", from: "lan2", to: "cloud:123", at: "web:5301", proto: "udp3", want: true, by: "LAN requests to 203.0.113.5:123/udp answered by chute web port 5301"},

	{name: "mutual peers", from: "web", to: "db:5432", want: true, by: "chute web may connect to its peer db (10.131.0.11)"},
	{name: "mutual peers, other way", from: "db", to: "web:81", want: true, by: "chute db may connect to its peer web (10.131.0.10)"},
	{name: "one-sided peers", from: "lonely", to: "web:81", want: false, by: "chute lonely: ARP for undeclared hosts dropped"},
	{name: "one-sided peers, other way", from: "web", to: "lonely:5432", want: false, by: "chute web: ARP for undeclared hosts dropped"},
	{name: "no peers", from: "db", to: "lonely:5432", want: false, by: "chute db: ARP for undeclared hosts dropped"},

	{name: "LAN to chute", from: "lan1", to: "web:81", want: false, by: "unsolicited LAN traffic to chutes dropped"},
	{name: "LAN pings chute", from: "lan1", to: "web", proto: "ping", want: false, by: "unsolicited LAN traffic to chutes dropped"},
	{name: "WAN to chute", from: "cloud", to: "web:81", want: false, by: "unsolicited gateway traffic to chutes dropped"},
	{name: "LAN answer to no connection", from: "lan1", to: "web:81", proto: "ack", want: false, by: "unsolicited LAN traffic to chutes dropped"},
	{name: "chute answer to no connection", from: "web", to: "lan2:554", proto: "ack", want: false, by: "chute web: invalid connection state dropped"},
	// What a chute may start passes whatever the connection's state (it
	// is decided before the tracker): a mutual peer's lone ACK arrives.
	{name: "mutual peer's packet of no connection", from: "db", to: "web:81", proto: "ack", want: true, by: "chute db may connect to its peer web (10.131.0.10)"},
}

// simHost is an endpoint of the simulated world: a chute, a LAN host, the
// gateway's kernel, or the cloud beyond it.
type simHost struct {
	name   string
	port   uint32
	mac    net.HardwareAddr
	addrs  []netip.Addr
	onLink []netip.Prefix // resolved with ARP; the rest goes to router
	router netip.Addr
}

// simWorld is a gateway's switch, as derive programs it, and its hosts.
type simWorld struct {
	topo  topology
	d     *derived
	hosts map[string]*simHost
	wan   bool // the gateway forwards chute traffic to the cloud
	sw    *ofsim.Switch
	// request is the last run's first packet as sent (MACs resolved)
	// and what the switch did with it.
	request      *ofsim.Packet
	requestTrace *ofsim.Trace
}

// newSimWorld puts the hosts around the flows derived for topo and
// chutes. lanMACs are the MACs of lan1 and lan2, on topo.LANPorts.
func newSimWorld(topo topology, chutes []*attached, lanMACs []net.HardwareAddr) *simWorld {
	w := &simWorld{topo: topo, d: derive(topo, chutes), hosts: map[string]*simHost{}, wan: true}
	local := uint32(ofp.PortLocal)
	w.hosts["gw"] = &simHost{name: "gw", port: local, mac: topo.GatewayMAC, addrs: []netip.Addr{topo.Gateway, topo.LANAddr.Addr()},
		onLink: []netip.Prefix{topo.Subnet, topo.LANAddr.Masked()}}
	w.hosts["gwlan"] = w.hosts["gw"]
	w.hosts["cloud"] = &simHost{name: "cloud", port: local, mac: topo.GatewayMAC, addrs: []netip.Addr{cloudIP},
		onLink: []netip.Prefix{topo.Subnet, topo.LANAddr.Masked()}}
	for i, a := range []netip.Addr{lan1Addr, lan2Addr} {
		name := fmt.Sprintf("lan%d", i+1)
		w.hosts[name] = &simHost{name: name, port: topo.LANPorts[i], mac: lanMACs[i], addrs: []netip.Addr{a},
			onLink: []netip.Prefix{topo.LANAddr.Masked()}, router: topo.LANAddr.Addr()}
	}
	for _, c := range chutes {
		w.hosts[c.Name] = &simHost{name: c.Name, port: c.Port, mac: c.MAC, addrs: []netip.Addr{c.IP},
			onLink: append([]netip.Prefix{topo.Subnet}, onLink(topo, c.Net)...), router: topo.Gateway}
	}
	return w
}

// addr is a host name's address: gwlan is the gateway's LAN address.
func (w *simWorld) addr(name string) netip.Addr {
	if name == "gwlan" {
		return w.topo.LANAddr.Addr()
	}
	return w.hosts[name].addrs[0]
}

// endpoint splits "host:port".
func (w *simWorld) endpoint(s string) (string, netip.AddrPort) {
	host, port, _ := strings.Cut(s, ":")
	n, _ := strconv.Atoi(port)
	return host, netip.AddrPortFrom(w.addr(host), uint16(n))
}

// run is one simulated attempt: a fresh switch (no connections yet), the
// whole exchange (ARP, the request, the answer, the next packet), and the
// notes of the flows that decided it: on success those the request hit,
// else the one that dropped the packet that did not arrive.
func (w *simWorld) run(c reachCase) (ok bool, notes []string, err error) {
	if err := w.reset(); err != nil {
		return false, nil, err
	}
	w.request, w.requestTrace = nil, nil
	x := &exchange{w: w, sw: w.sw}
	return x.run(c)
}

// reset gives the world a switch holding its flows and no connections.
func (w *simWorld) reset() error {
	if w.sw == nil {
		sw, err := ofsim.New(w.d.Flows, w.d.Meters)
		if err != nil {
			return err
		}
		w.sw = sw
	}
	w.sw.Reset()
	return nil
}

type exchange struct {
	w  *simWorld
	sw *ofsim.Switch
}

// failure is a packet that did not arrive: note is the flow that
// dropped it.
type failure struct{ note, why string }

func (f *failure) Error() string { return f.why + " (" + f.note + ")" }

func (x *exchange) run(c reachCase) (bool, []string, error) {
	from := x.w.hosts[c.from]
	toHost, to := x.w.endpoint(c.to)
	atHost := toHost
	if c.at != "" {
		atHost, _ = x.w.endpoint(c.at)
	}
	if atHost == "gwlan" {
		atHost = "gw"
	}
	proto := map[string]uint8{"": ofsim.ProtoTCP, "tcp": ofsim.ProtoTCP, "ack": ofsim.ProtoTCP, "udp": ofsim.ProtoUDP, "udp3": ofsim.ProtoUDP, "ping": ofsim.ProtoICMP}[c.proto]
	req := ofsim.Packet{EthType: ofsim.EthIPv4, Src: x.srcAddr(from, to.Addr()), Dst: to.Addr(), Proto: proto, SrcPort: 40000, DstPort: to.Port()}
	switch c.proto {
	case "", "tcp":
		req.TCPFlags = ofsim.TCPSyn
	case "ack":
		req.TCPFlags = ofsim.TCPAck
	case "ping":
		req.SrcPort, req.DstPort, req.ICMPType, req.ICMPID = 0, 0, 8, 7
	}
	got, first, err := x.send(from, req)
	if err != nil {
		return false, notOf(err), ignoreFailure(err)
	}
	if got.host.name != atHost {
		return false, first[len(first)-1:], nil
	}
	if c.proto == "ack" {
		return true, first, nil
	}
	if c.proto == "udp3" {
		// The flow's next datagrams, before any answer: the same
		// receiver sees the same translated packet.
		for range 2 {
			next, _, err := x.send(from, req)
			if err != nil {
				return false, notOf(err), ignoreFailure(err)
			}
			if next.host != got.host || next.pkt.Dst != got.pkt.Dst || next.pkt.DstPort != got.pkt.DstPort {
				return false, []string{"next datagram elsewhere"}, nil
			}
		}
	}
	// The answer, from what the receiver saw.
	ans := *got.pkt
	ans.Src, ans.Dst, ans.SrcPort, ans.DstPort = got.pkt.Dst, got.pkt.Src, got.pkt.DstPort, got.pkt.SrcPort
	ans.EthSrc, ans.EthDst = nil, nil
	switch c.proto {
	case "", "tcp":
		ans.TCPFlags = ofsim.TCPSyn | ofsim.TCPAck
	case "ping":
		ans.ICMPType = 0
	}
	answers := 1
	if c.proto == "udp3" {
		answers = 3
	}
	for range answers {
		back, _, err := x.send(got.host, ans)
		if err != nil {
			return false, notOf(err), ignoreFailure(err)
		}
		if back.host != from || back.pkt.Src != req.Dst || back.pkt.Dst != req.Src || back.pkt.SrcPort != req.DstPort || back.pkt.DstPort != req.SrcPort {
			return false, []string{"answer not undone"}, nil
		}
	}
	if c.proto == "" || c.proto == "tcp" {
		ack := req
		ack.TCPFlags = ofsim.TCPAck
		again, _, err := x.send(from, ack)
		if err != nil {
			return false, notOf(err), ignoreFailure(err)
		}
		if again.host != got.host {
			return false, []string{"next packet elsewhere"}, nil
		}
	}
	return true, first, nil
}

func notOf(err error) []string {
	if f, ok := err.(*failure); ok {
		return []string{f.note}
	}
	return nil
}

// ignoreFailure keeps the simulator's own errors (a refused flow, an
// ambiguous lookup) and drops a packet's failure to arrive, which is a
// result.
func ignoreFailure(err error) error {
	if _, ok := err.(*failure); ok {
		return nil
	}
	return err
}

// srcAddr is the address h sends from towards dst.
func (x *exchange) srcAddr(h *simHost, dst netip.Addr) netip.Addr {
	for _, a := range h.addrs {
		for _, p := range h.onLink {
			if p.Contains(a) && p.Contains(dst) {
				return a
			}
		}
	}
	return h.addrs[0]
}

type delivery struct {
	host *simHost
	pkt  *ofsim.Packet
}

// send puts p on the wire from h, resolving the next hop first, and
// returns who accepted it and the notes of the flows it hit.
func (x *exchange) send(h *simHost, p ofsim.Packet) (delivery, []string, error) {
	hop := p.Dst
	if !slices.ContainsFunc(h.onLink, func(pr netip.Prefix) bool { return pr.Contains(hop) }) {
		hop = h.router
	}
	// The cloud's packets enter the bridge routed by the gateway.
	resolver := h
	if h.name == "cloud" {
		resolver = x.w.hosts["gw"]
	}
	mac, err := x.resolve(resolver, hop)
	if err != nil {
		return delivery{}, nil, err
	}
	p.InPort, p.EthSrc, p.EthDst = h.port, h.mac, mac
	tr, err := x.sw.Run(p)
	if err != nil {
		return delivery{}, nil, err
	}
	if x.w.request == nil {
		x.w.request, x.w.requestTrace = &p, tr
	}
	var notes []string
	for _, s := range tr.Steps {
		if s.Flow != nil {
			notes = append(notes, s.Flow.Note)
		}
	}
	for _, o := range tr.Outputs {
		if r := x.accept(o); r != nil {
			return delivery{r, o.Packet}, notes, nil
		}
	}
	return delivery{}, nil, &failure{tr.Note(), fmt.Sprintf("%s: no host accepted it (outputs %v)", p.String(), tr.Outputs)}
}

// accept returns the host that takes a packet out of a port: the one at
// the port with its MAC and address; for the gateway's port, the
// gateway itself, or the cloud when the gateway forwards chute traffic to
// it (masqueraded, the answer un-masqueraded, which the simulator leaves
// out).
func (x *exchange) accept(o ofsim.Output) *simHost {
	p := o.Packet
	if p.EthType == ofsim.EthARP {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(x.w.hosts)) {
		h := x.w.hosts[name]
		if h.port != o.Port || !slices.Contains(h.addrs, p.Dst) {
			continue
		}
		if !slices.Equal(p.EthDst, h.mac) && !slices.Equal(p.EthDst, ofsim.Broadcast) {
			return nil
		}
		if h.name == "cloud" && (!x.w.wan || !x.w.topo.Subnet.Contains(p.Src)) {
			return nil // the forward guard lets chute traffic only out
		}
		return h
	}
	return nil
}

// resolve runs h's ARP request for hop through the switch, and its owner's
// reply back, and returns the owner's MAC.
func (x *exchange) resolve(h *simHost, hop netip.Addr) (net.HardwareAddr, error) {
	var owner *simHost
	for _, name := range slices.Sorted(maps.Keys(x.w.hosts)) {
		if o := x.w.hosts[name]; o.name != "cloud" && slices.Contains(o.addrs, hop) {
			owner = o
		}
	}
	if owner == nil {
		return nil, &failure{"no host " + hop.String(), "nobody has " + hop.String()}
	}
	if owner.port == h.port {
		return owner.mac, nil // the gateway, from the cloud's side
	}
	spa := x.srcAddr(h, hop)
	req := ofsim.Packet{InPort: h.port, EthSrc: h.mac, EthDst: ofsim.Broadcast, EthType: ofsim.EthARP, ARPOp: 1,
		ARPSPA: spa, ARPSHA: h.mac, ARPTPA: hop, ARPTHA: make(net.HardwareAddr, 6)}
	tr, err := x.sw.Run(req)
	if err != nil {
		return nil, err
	}
	if len(tr.OutputTo(owner.port)) == 0 {
		return nil, &failure{tr.Note(), fmt.Sprintf("%s's ARP for %s did not reach %s", h.name, hop, owner.name)}
	}
	rep := ofsim.Packet{InPort: owner.port, EthSrc: owner.mac, EthDst: h.mac, EthType: ofsim.EthARP, ARPOp: 2,
		ARPSPA: hop, ARPSHA: owner.mac, ARPTPA: spa, ARPTHA: h.mac}
	if tr, err = x.sw.Run(rep); err != nil {
		return nil, err
	}
	if len(tr.OutputTo(h.port)) == 0 {
		return nil, &failure{tr.Note(), fmt.Sprintf("%s's ARP reply did not reach %s", owner.name, h.name)}
	}
	return owner.mac, nil
}

// simTopo is the matrix's gateway as the simulator sees it: two LAN ports
// (1 and 2), chutes on ports 10 and up.
func simTopo() (topology, []*attached, []net.HardwareAddr) {
	topo := topology{
		Subnet: DefaultSubnet, Gateway: DefaultSubnet.Addr().Next(), LANAddr: lanGW,
		GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, LANPorts: []uint32{1, 2},
	}
	lanMACs := []net.HardwareAddr{{2, 0, 0, 0, 0xaa, 1}, {2, 0, 0, 0, 0xaa, 2}}
	var chutes []*attached
	for _, c := range matrixChutes(lanMACs[1]) {
		chutes = append(chutes, &attached{Chute: Chute{Name: c.name, MAC: netconf.MACFor(c.name),
			IP: AddressFor(DefaultSubnet, c.slot), Net: c.net}, Port: uint32(10 + c.slot)})
	}
	slices.SortFunc(chutes, func(a, b *attached) int { return strings.Compare(a.Name, b.Name) })
	return topo, chutes, lanMACs
}

func TestMatrixSimulated(t *testing.T) {
	topo, chutes, lanMACs := simTopo()
	w := newSimWorld(topo, chutes, lanMACs)
	for _, c := range reachCases {
		t.Run(c.name, func(t *testing.T) {
			ok, notes, err := w.run(c)
			if err != nil {
				t.Fatalf("simulator: %v", err)
			}
			if ok != c.want {
				t.Errorf("%s -> %s (%s): reached %v, want %v (decided by %q)", c.from, c.to, c.proto, ok, c.want, notes)
			}
			if !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, c.by) }) {
				t.Errorf("%s -> %s: decided by %q, want %q", c.from, c.to, notes, c.by)
			}
		})
	}
}

// A chute's meters count what it sends and what is delivered to it, on
// every path: its own connections and those DNATed to it.
func TestMetersCountedSimulated(t *testing.T) {
	topo, chutes, lanMACs := simTopo()
	var web *attached
	for _, c := range chutes {
		if c.Name == "web" {
			c.Bandwidth = Bandwidth{Egress: 8_000_000, Ingress: 4_000_000}
			web = c
		}
	}
	w := newSimWorld(topo, chutes, lanMACs)
	id := web.id(topo.Subnet)
	for _, tt := range []struct {
		c       reachCase
		tx, rx  uint64
		comment string
	}{
		{reachCase{from: "web", to: "lan1:554"}, 2, 1, "SYN and ACK sent, SYN-ACK received"},
		{reachCase{from: "lan1", to: "gwlan:8080", at: "web:80"}, 1, 2, "SYN and ACK received through the DNAT, SYN-ACK sent"},
		{reachCase{from: "web", to: "lan2:554"}, 1, 0, "a SYN the policy drops still went through the egress meter"},
	} {
		ok, notes, err := w.run(tt.c)
		if err != nil {
			t.Fatal(err)
		}
		if tt.rx > 0 && !ok {
			t.Fatalf("%s -> %s did not connect: %q", tt.c.from, tt.c.to, notes)
		}
		tx, rx := w.sw.Meter(egressMeter(id)), w.sw.Meter(ingressMeter(id))
		if tx.Packets != tt.tx || rx.Packets != tt.rx {
			t.Errorf("%s -> %s: egress meter %d packets, ingress %d; want %d and %d (%s)", tt.c.from, tt.c.to, tx.Packets, rx.Packets, tt.tx, tt.rx, tt.comment)
		}
	}
}

// Chutes have IPv4 only: no IPv6 packet leaves a chute, and none reaches
// one, whoever sends it and to whatever MAC (neighbour solicitations
// included, which the LAN and the gateway still exchange).
func TestIPv6KeptFromChutesSimulated(t *testing.T) {
	topo, chutes, lanMACs := simTopo()
	w := newSimWorld(topo, chutes, lanMACs)
	sw, err := ofsim.New(w.d.Flows, w.d.Meters)
	if err != nil {
		t.Fatal(err)
	}
	lanV6, chuteV6 := netip.MustParseAddr("2001:db8::20"), netip.MustParseAddr("fd00::10")
	nsMAC := net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x10}
	web, lan1, gw := w.hosts["web"], w.hosts["lan1"], w.hosts["gw"]
	chutePorts := map[uint32]string{}
	for _, c := range chutes {
		chutePorts[c.Port] = c.Name
	}
	syn := func(from *simHost, dstMAC net.HardwareAddr, src, dst netip.Addr) ofsim.Packet {
		return ofsim.Packet{InPort: from.port, EthSrc: from.mac, EthDst: dstMAC, EthType: ofsim.EthIPv6,
			Src: src, Dst: dst, Proto: ofsim.ProtoTCP, SrcPort: 40000, DstPort: 80, TCPFlags: ofsim.TCPSyn}
	}
	ns := func(from *simHost, src, target netip.Addr) ofsim.Packet {
		return ofsim.Packet{InPort: from.port, EthSrc: from.mac, EthDst: nsMAC, EthType: ofsim.EthIPv6,
			Src: src, Dst: netip.MustParseAddr("ff02::1:ff00:10"), Proto: ofsim.ProtoICMPv6, ICMPType: 135, NDTarget: target}
	}
	for _, tt := range []struct {
		name string
		p    ofsim.Packet
		by   string
	}{
		{"a chute's IPv6 to a LAN host", syn(web, lan1.mac, chuteV6, lanV6), "chute web: spoofed or non-IPv4 traffic dropped"},
		{"a chute's neighbour solicitation", ns(web, chuteV6, lanV6), "chute web: spoofed or non-IPv4 traffic dropped"},
		{"a LAN host's IPv6 to a chute's MAC", syn(lan1, web.mac, lanV6, chuteV6), "LAN's other traffic (IPv6...) to the gateway and the LAN only"},
		{"a LAN host's neighbour solicitation", ns(lan1, lanV6, chuteV6), "LAN's other traffic (IPv6...) to the gateway and the LAN only"},
		{"the gateway's IPv6 to a chute's MAC", syn(gw, web.mac, netip.MustParseAddr("2001:db8::1"), chuteV6), "gateway's other traffic (IPv6...) to the LAN only"},
	} {
		tr, err := sw.Run(tt.p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tr.Note() != tt.by {
			t.Errorf("%s: decided by %q, want %q", tt.name, tr.Note(), tt.by)
		}
		for _, o := range tr.Outputs {
			if name, ok := chutePorts[o.Port]; ok {
				t.Errorf("%s: delivered to chute %s", tt.name, name)
			}
		}
	}
}
