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
			WAN:    true,
			LAN:    []LANRule{{Prefix: lan1, Ports: []uint16{554}}},
			Expose: []Expose{{Port: 80, GatewayPort: 8080, Proto: TCP}, {Port: 5300, GatewayPort: 8083, Proto: UDP}},
			Redirect: []Redirect{
				{To: netip.AddrPortFrom(cloudIP, 80), Port: 8081, Proto: TCP}, {To: netip.AddrPortFrom(cloudIP, 123), Port: 5301, Proto: UDP},
				{To: netip.AddrPortFrom(cloud6, 80), Port: 8084, Proto: TCP}, {To: netip.AddrPortFrom(cloud6, 123), Port: 5302, Proto: UDP},
			},
			Peers: []string{"db"},
		}},
		{"db", 1, Policy{Peers: []string{"web"}}},
		// lonely may reach lan2 over IPv6 on any port, so its answers to
		// lan2's request to its exposed port also match what it may start.
		{"lonely", 2, Policy{Peers: []string{"web"}, LAN: []LANRule{{Prefix: netip.PrefixFrom(lanV6[1], 128)}},
			Expose: []Expose{{Port: 80, GatewayPort: 8086, Proto: TCP}}}},
		// cam may reach lan1 on any port, so its answers to lan1's
		// request to an exposed port also match what it may start.
		{"cam", 3, Policy{
			LAN:    []LANRule{{Prefix: lan1}},
			Expose: []Expose{{Port: 80, GatewayPort: 8082, Proto: TCP}},
		}},
		{"scan", 4, Policy{LAN: []LANRule{{Prefix: netip.MustParsePrefix("198.51.100.20/31"), Ports: []uint16{554}},
			{Prefix: netip.MustParsePrefix("2001:db8:1::20/127"), Ports: []uint16{554}}}}},
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
	six      bool   // over IPv6: every endpoint by its IPv6 address
	global   bool   // over IPv6, chutes by their global address (else their ULA)
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
	// The tracker takes a lone ACK for a connection under way (new),
	// which the chute may not start.
	{name: "chute answer to no connection", from: "web", to: "lan2:554", proto: "ack", want: false, by: "chute web: undeclared LAN hosts denied"},
	// What a chute may start passes whatever the connection's state (it
	// is decided before the tracker): a mutual peer's lone ACK arrives.
	{name: "mutual peer's packet of no connection", from: "db", to: "web:81", proto: "ack", want: true, by: "chute db may connect to its peer web (10.131.0.10)"},
}

// The IPv6 of the matrix: the chutes' ULA /64, the prefix delegated to
// the gateway (the chutes' global /64 is its first), the LAN's and the
// cloud's documentation addresses, the gateway's on the LAN (where LAN
// users reach exposed ports; their IPv6 router).
var (
	simSubnet6 = netip.MustParsePrefix("fd70:6472:6f70::/64")
	simPrefix6 = netip.MustParsePrefix("2001:db8:6400::/56")
	lanNet6    = netip.MustParsePrefix("2001:db8:1::/64")
	lanGW6     = netip.MustParsePrefix("2001:db8:1::1/64")
	lanV6      = []netip.Addr{netip.MustParseAddr("2001:db8:1::20"), netip.MustParseAddr("2001:db8:1::21")}
	cloud6     = netip.MustParseAddr("2001:db8:ffff::5")
)

// reachCases6 are the matrix over IPv6: what chutes may reach at the
// gateway and among themselves is as over IPv4; nothing beyond the
// gateway, no LAN host, and no unsolicited traffic reaches a chute; LAN
// users reach exposed ports at the gateway's IPv6 LAN address and
// redirected IPv6 addresses, on the declared ports and protocols only.
var reachCases6 = []reachCase{
	{name: "IPv6 ping the gateway", six: true, from: "web", to: "gw", proto: "ping", want: true, by: "chute web may ping the gateway fd70:6472:6f70::1"},
	{name: "IPv6 DNS at the gateway over UDP", six: true, from: "web", to: "gw:53", proto: "udp", want: true, by: "chute web may use DNS at the gateway [fd70:6472:6f70::1]:53/udp"},
	{name: "IPv6 DNS at the gateway over TCP", six: true, from: "db", to: "gw:53", want: true, by: "chute db may use DNS at the gateway [fd70:6472:6f70::1]:53/tcp"},
	{name: "IPv6 other gateway ports", six: true, from: "web", to: "gw:22", want: false, by: "chute web: IPv6 default deny"},
	{name: "IPv6 the gateway connects to a chute", six: true, from: "gw", to: "web:81", want: true, by: "the gateway (fd70:6472:6f70::1) may connect to chutes"},

	{name: "IPv6 mutual peers", six: true, from: "web", to: "db:5432", want: true, by: "chute web may connect to its peer db (fd70:6472:6f70::b)"},
	{name: "IPv6 mutual peers, other way", six: true, from: "db", to: "web:81", proto: "udp", want: true, by: "chute db may connect to its peer web (fd70:6472:6f70::a)"},
	{name: "IPv6 one-sided peers", six: true, from: "lonely", to: "web:81", want: false, by: "chute lonely: neighbour discovery for undeclared hosts dropped"},
	{name: "IPv6 one-sided peers, other way", six: true, from: "web", to: "lonely:5432", want: false, by: "chute web: neighbour discovery for undeclared hosts dropped"},
	{name: "IPv6 no peers", six: true, from: "db", to: "lonely", proto: "ping", want: false, by: "chute db: neighbour discovery for undeclared hosts dropped"},

	// The WAN over IPv6, from the chute's global address, routed: only
	// with wan, and nothing from the WAN but answers.
	{name: "IPv6 wan", six: true, from: "web", to: "cloud:80", want: true, by: "chute web may reach the WAN over IPv6 from 2001:db8:6400::a"},
	{name: "IPv6 wan over UDP", six: true, from: "web", to: "cloud:123", proto: "udp", want: true, by: "chute web may reach the WAN over IPv6 from 2001:db8:6400::a"},
	{name: "IPv6 wan ping", six: true, from: "web", to: "cloud", proto: "ping", want: true, by: "chute web may reach the WAN over IPv6 from 2001:db8:6400::a"},
	{name: "IPv6 no wan", six: true, from: "db", to: "cloud:80", want: false, by: "chute db: IPv6 default deny"},
	{name: "IPv6 no wan, ping", six: true, from: "cam", to: "cloud", proto: "ping", want: false, by: "chute cam: IPv6 default deny"},
	{name: "IPv6 WAN to a chute's global address", six: true, global: true, from: "cloud", to: "web:81", want: false, by: "unsolicited gateway IPv6 to chutes dropped"},
	{name: "IPv6 WAN pings a chute's global address", six: true, global: true, from: "cloud", to: "web", proto: "ping", want: false, by: "unsolicited gateway IPv6 to chutes dropped"},
	{name: "IPv6 WAN over UDP to a chute's global address", six: true, global: true, from: "cloud", to: "db:5432", proto: "udp", want: false, by: "unsolicited gateway IPv6 to chutes dropped"},
	{name: "IPv6 LAN host through the gateway", six: true, from: "cam", to: "lan1:554", want: false, by: "chute cam: IPv6 default deny"},
	// A wan chute's IPv6 to an undeclared LAN host is WAN traffic to the
	// policy, even where the LAN's prefix is on-link for it (web answers
	// LAN users): the gateway routes it, and its guard forwards only out
	// of the WAN interface.
	{name: "IPv6 LAN host through the gateway, with wan", six: true, from: "web", to: "lan1:554", want: false, by: "chute web may reach the WAN over IPv6 from 2001:db8:6400::a"},

	// A LAN host that takes the chutes' subnet for its own link.
	{name: "IPv6 LAN to chute", six: true, from: "lan1", to: "web:81", want: false, by: "LAN neighbour discovery to the gateway and the LAN"},
	{name: "IPv6 LAN to a chute that may reach it", six: true, from: "lan1", to: "scan:81", want: false, by: "LAN neighbour discovery to the gateway and the LAN"},

	{name: "IPv6 declared LAN prefix and port", six: true, from: "scan", to: "lan1:554", want: true, by: "chute scan may reach LAN [2001:db8:1::20/127]:554/tcp"},
	{name: "IPv6 declared LAN prefix over UDP", six: true, from: "scan", to: "lan2:554", proto: "udp", want: true, by: "chute scan may reach LAN [2001:db8:1::20/127]:554/udp"},
	{name: "IPv6 declared LAN prefix, other port", six: true, from: "scan", to: "lan1:22", want: false, by: "chute scan: IPv6 default deny"},
	{name: "IPv6 declared LAN prefix by ports: no ping", six: true, from: "scan", to: "lan1", proto: "ping", want: false, by: "chute scan: IPv6 default deny"},
	{name: "IPv6 declared LAN host, all ports", six: true, from: "lonely", to: "lan2", proto: "ping", want: true, by: "chute lonely may reach LAN 2001:db8:1::21"},
	{name: "IPv6 declared LAN host, all ports over TCP", six: true, from: "lonely", to: "lan2:22", want: true, by: "chute lonely may reach LAN 2001:db8:1::21"},
	{name: "IPv6 undeclared LAN host", six: true, from: "lonely", to: "lan1:554", want: false, by: "chute lonely: IPv6 default deny"},
	{name: "IPv6 LAN host declared over IPv4 only", six: true, from: "cam", to: "lan1:22", want: false, by: "chute cam: IPv6 default deny"},
	{name: "IPv6 WAN to chute", six: true, from: "cloud", to: "web:81", want: false, by: "unsolicited gateway IPv6 to chutes dropped"},
	{name: "IPv6 WAN pings chute", six: true, from: "cloud", to: "web", proto: "ping", want: false, by: "unsolicited gateway IPv6 to chutes dropped"},

	{name: "IPv6 exposed port", six: true, from: "lan1", to: "gwlan:8080", at: "web:80", want: true, by: "LAN users reach chute web port 80/tcp at [2001:db8:1::1]:8080"},
	{name: "IPv6 exposed port, from the other LAN port", six: true, from: "lan2", to: "gwlan:8080", at: "web:80", want: true, by: "LAN users reach chute web port 80/tcp at [2001:db8:1::1]:8080"},
	{name: "IPv6 exposed by a chute that may reach the user", six: true, from: "lan2", to: "gwlan:8086", at: "lonely:80", want: true, by: "LAN users reach chute lonely port 80/tcp at [2001:db8:1::1]:8086"},
	{name: "IPv6 exposed UDP port, three datagrams before an answer", six: true, from: "lan1", to: "gwlan:8083", at: "web:5300", proto: "udp3", want: true, by: "LAN users reach chute web port 5300/udp at [2001:db8:1::1]:8083"},
	{name: "IPv6 unexposed gateway port", six: true, from: "lan1", to: "gwlan:81", at: "web:81", want: false, by: "LAN's other traffic (IPv6...) to the gateway and the LAN only"},
	{name: "IPv6 exposed port over the other protocol", six: true, from: "lan1", to: "gwlan:8080", at: "web:80", proto: "udp", want: false, by: "LAN's other traffic (IPv6...) to the gateway and the LAN only"},
	{name: "IPv6 redirect", six: true, from: "lan1", to: "cloud:80", at: "web:8084", want: true, by: "LAN requests to [2001:db8:ffff::5]:80/tcp answered by chute web port 8084"},
	{name: "IPv6 redirect over UDP, three datagrams before an answer", six: true, from: "lan2", to: "cloud:123", at: "web:5302", proto: "udp3", want: true, by: "LAN requests to [2001:db8:ffff::5]:123/udp answered by chute web port 5302"},
	{name: "IPv6 redirected address, other port", six: true, from: "lan1", to: "cloud:81", at: "web:8084", want: false, by: "LAN's other traffic (IPv6...) to the gateway and the LAN only"},
	{name: "IPv6 LAN straight to a redirect's chute port", six: true, from: "lan1", to: "web:8084", want: false, by: "LAN neighbour discovery to the gateway and the LAN"},
}

// simHost is an endpoint of the simulated world: a chute, a LAN host, the
// gateway's kernel, or the cloud beyond it.
type simHost struct {
	name   string
	port   uint32
	mac    net.HardwareAddr
	addrs  []netip.Addr
	onLink []netip.Prefix // resolved with ARP or ND; the rest goes to router
	router netip.Addr
	// router6 is the IPv6 router; a chute may set one whatever the
	// gateway configured.
	router6 netip.Addr
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
	subnets6 := chutePrefixes6(topo)
	// The gateway's addresses as setupBridge gives them (its global one
	// with a delegated prefix).
	w.hosts["gw"] = &simHost{name: "gw", port: local, mac: topo.GatewayMAC, addrs: []netip.Addr{topo.Gateway, topo.LANAddr.Addr(), topo.Gateway6, gateway6(topo.Global6), topo.LANAddr6.Addr()},
		onLink: append([]netip.Prefix{topo.Subnet, topo.LANAddr.Masked(), topo.LANAddr6.Masked()}, subnets6...)}
	w.hosts["gwlan"] = w.hosts["gw"]
	w.hosts["cloud"] = &simHost{name: "cloud", port: local, mac: topo.GatewayMAC, addrs: []netip.Addr{cloudIP, cloud6},
		onLink: append([]netip.Prefix{topo.Subnet, topo.LANAddr.Masked()}, subnets6...)}
	for i, a := range []netip.Addr{lan1Addr, lan2Addr} {
		name := fmt.Sprintf("lan%d", i+1)
		w.hosts[name] = &simHost{name: name, port: topo.LANPorts[i], mac: lanMACs[i], addrs: []netip.Addr{a, lanV6[i]},
			onLink: append([]netip.Prefix{topo.LANAddr.Masked(), lanNet6}, subnets6...), router: topo.LANAddr.Addr(), router6: topo.LANAddr6.Addr()}
	}
	for _, c := range chutes {
		h := &simHost{name: c.Name, port: c.Port, mac: c.MAC, addrs: []netip.Addr{c.IP, AddressFor6(topo.Subnet, topo.Subnet6, c.IP)},
			onLink: append(append([]netip.Prefix{topo.Subnet}, subnets6...), onLink(topo, c.Net)...), router: topo.Gateway, router6: topo.Gateway6}
		if topo.Global6.IsValid() {
			h.addrs = append(h.addrs, AddressFor6(topo.Subnet, topo.Global6, c.IP))
		}
		w.hosts[c.Name] = h
	}
	return w
}

// addr is a host name's address of a family: gwlan is the gateway's LAN
// address of the family; a chute's IPv6 is its ULA, or with global its
// global address.
func (w *simWorld) addr(name string, six, global bool) netip.Addr {
	switch {
	case name == "gwlan" && six:
		return w.topo.LANAddr6.Addr()
	case name == "gwlan":
		return w.topo.LANAddr.Addr()
	}
	for _, a := range w.hosts[name].addrs {
		if a.Is6() == six && (!global || !six || w.topo.Global6.Contains(a)) {
			return a
		}
	}
	return netip.Addr{}
}

// endpoint splits "host:port".
func (w *simWorld) endpoint(s string, c reachCase) (string, netip.AddrPort) {
	host, port, _ := strings.Cut(s, ":")
	n, _ := strconv.Atoi(port)
	return host, netip.AddrPortFrom(w.addr(host, c.six, c.global), uint16(n))
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
	// neighbours are what hosts learned from the solicitations they
	// received (host name, then address): as Linux does, they answer
	// without soliciting in turn.
	neighbours map[string]map[netip.Addr]net.HardwareAddr
}

// failure is a packet that did not arrive: note is the flow that
// dropped it.
type failure struct{ note, why string }

func (f *failure) Error() string { return f.why + " (" + f.note + ")" }

func (x *exchange) run(c reachCase) (bool, []string, error) {
	from := x.w.hosts[c.from]
	toHost, to := x.w.endpoint(c.to, c)
	atHost := toHost
	if c.at != "" {
		atHost, _ = x.w.endpoint(c.at, c)
	}
	if atHost == "gwlan" {
		atHost = "gw"
	}
	proto := map[string]uint8{"": ofsim.ProtoTCP, "tcp": ofsim.ProtoTCP, "ack": ofsim.ProtoTCP, "udp": ofsim.ProtoUDP, "udp3": ofsim.ProtoUDP, "ping": ofsim.ProtoICMP}[c.proto]
	ethType, echo, echoReply := uint16(ofsim.EthIPv4), uint8(8), uint8(0)
	if c.six {
		ethType, echo, echoReply = ofsim.EthIPv6, 128, 129
		if proto == ofsim.ProtoICMP {
			proto = ofsim.ProtoICMPv6
		}
	}
	req := ofsim.Packet{EthType: ethType, Src: x.srcAddr(from, to.Addr()), Dst: to.Addr(), Proto: proto, SrcPort: 40000, DstPort: to.Port()}
	switch c.proto {
	case "", "tcp":
		req.TCPFlags = ofsim.TCPSyn
	case "ack":
		req.TCPFlags = ofsim.TCPAck
	case "ping":
		req.SrcPort, req.DstPort, req.ICMPType, req.ICMPID = 0, 0, echo, 7
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
		ans.ICMPType = echoReply
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

// srcAddr is the address h sends from towards dst: one on the same link,
// else, as Linux's source selection (RFC 6724's labels), one that is a
// unique local address if and only if dst is, else its first of dst's
// family.
func (x *exchange) srcAddr(h *simHost, dst netip.Addr) netip.Addr {
	for _, a := range h.addrs {
		for _, p := range h.onLink {
			if p.Contains(a) && p.Contains(dst) {
				return a
			}
		}
	}
	for _, a := range h.addrs {
		if a.Is6() && dst.Is6() && a.IsPrivate() == dst.IsPrivate() {
			return a
		}
	}
	for _, a := range h.addrs {
		if a.Is6() == dst.Is6() {
			return a
		}
	}
	return netip.Addr{}
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
		if p.Dst.Is6() {
			hop = h.router6
		}
		if !hop.IsValid() {
			return delivery{}, nil, &failure{"no route", fmt.Sprintf("%s has no route to %s", h.name, p.Dst)}
		}
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
		if h.name == "cloud" && (!x.w.wan || !x.w.topo.Subnet.Contains(p.Src) && !x.w.topo.Global6.Contains(p.Src)) {
			return nil // the forward guard lets chute traffic out from these only
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
	if mac, ok := x.neighbours[h.name][hop]; ok {
		return mac, nil
	}
	spa := x.srcAddr(h, hop)
	if hop.Is6() {
		return x.solicit(h, owner, spa, hop)
	}
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

// solicit is resolve over IPv6: h's neighbour solicitation for hop, to
// its solicited-node group, and its owner's advertisement back.
func (x *exchange) solicit(h, owner *simHost, src, hop netip.Addr) (net.HardwareAddr, error) {
	tr, err := x.sw.Run(neighbourSolicitation(h.port, h.mac, src, hop))
	if err != nil {
		return nil, err
	}
	if len(tr.OutputTo(owner.port)) == 0 {
		return nil, &failure{tr.Note(), fmt.Sprintf("%s's solicitation for %s did not reach %s", h.name, hop, owner.name)}
	}
	if x.neighbours == nil {
		x.neighbours = map[string]map[netip.Addr]net.HardwareAddr{}
	}
	if x.neighbours[owner.name] == nil {
		x.neighbours[owner.name] = map[netip.Addr]net.HardwareAddr{}
	}
	x.neighbours[owner.name][src] = h.mac
	na := ofsim.Packet{InPort: owner.port, EthSrc: owner.mac, EthDst: h.mac, EthType: ofsim.EthIPv6,
		Src: hop, Dst: src, Proto: ofsim.ProtoICMPv6, ICMPType: 136, NDTarget: hop, NDTLL: owner.mac}
	if tr, err = x.sw.Run(na); err != nil {
		return nil, err
	}
	if len(tr.OutputTo(h.port)) == 0 {
		return nil, &failure{tr.Note(), fmt.Sprintf("%s's advertisement did not reach %s", owner.name, h.name)}
	}
	return owner.mac, nil
}

// neighbourSolicitation is a solicitation for target, sent to its
// solicited-node group.
func neighbourSolicitation(port uint32, mac net.HardwareAddr, src, target netip.Addr) ofsim.Packet {
	t := target.As16()
	group := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	return ofsim.Packet{InPort: port, EthSrc: mac, EthDst: net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]},
		EthType: ofsim.EthIPv6, Src: src, Dst: group, Proto: ofsim.ProtoICMPv6, ICMPType: 135, NDTarget: target, NDSLL: mac}
}

// simTopo is the matrix's gateway as the simulator sees it: two LAN ports
// (1 and 2), chutes on ports 10 and up.
func simTopo() (topology, []*attached, []net.HardwareAddr) {
	topo := topology{
		Subnet: DefaultSubnet, Gateway: DefaultSubnet.Addr().Next(), LANAddr: lanGW,
		GatewayMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, LANPorts: []uint32{1, 2},
		Subnet6: simSubnet6, Gateway6: gateway6(simSubnet6), Global6: globalSubnet6(simPrefix6), LANAddr6: lanGW6,
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
	for _, c := range slices.Concat(reachCases, reachCases6) {
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

// Neighbour discovery over the chutes' IPv6: a solicitation reaches the
// owner of its target and no one else (no flooding to other chutes or the
// LAN), and a chute cannot speak for another's address or MAC (the ND
// counterpart of the ARP spoofing guard), nor reach anyone with its IPv6
// without being its peer. The LAN's IPv6 never reaches a chute's port.
func TestNeighbourDiscoverySimulated(t *testing.T) {
	topo, chutes, lanMACs := simTopo()
	w := newSimWorld(topo, chutes, lanMACs)
	sw, err := ofsim.New(w.d.Flows, w.d.Meters)
	if err != nil {
		t.Fatal(err)
	}
	web, db, lonely, lan1, gw, scan := w.hosts["web"], w.hosts["db"], w.hosts["lonely"], w.hosts["lan1"], w.hosts["gw"], w.hosts["scan"]
	six := func(h *simHost) netip.Addr { return w.addr(h.name, true, false) }
	global := func(h *simHost) netip.Addr { return w.addr(h.name, true, true) }
	ns := func(from *simHost, src, target netip.Addr, sll net.HardwareAddr) ofsim.Packet {
		p := neighbourSolicitation(from.port, from.mac, src, target)
		p.NDSLL = sll
		return p
	}
	na := func(from *simHost, src, target netip.Addr, to *simHost, tll net.HardwareAddr) ofsim.Packet {
		return ofsim.Packet{InPort: from.port, EthSrc: from.mac, EthDst: to.mac, EthType: ofsim.EthIPv6,
			Src: src, Dst: six(to), Proto: ofsim.ProtoICMPv6, ICMPType: 136, NDTarget: target, NDTLL: tll}
	}
	probe := func(from *simHost, src netip.Addr, to *simHost, target ...netip.Addr) ofsim.Packet {
		dst := append(target, six(to))[0]
		p := neighbourSolicitation(from.port, from.mac, src, dst)
		p.EthDst, p.Dst = to.mac, dst
		return p
	}
	toGatewayLAN := func(p ofsim.Packet) ofsim.Packet {
		p.Dst = topo.LANAddr6.Addr()
		return p
	}
	syn := func(from *simHost, dstMAC net.HardwareAddr, src, dst netip.Addr) ofsim.Packet {
		return ofsim.Packet{InPort: from.port, EthSrc: from.mac, EthDst: dstMAC, EthType: ofsim.EthIPv6,
			Src: src, Dst: dst, Proto: ofsim.ProtoTCP, SrcPort: 40000, DstPort: 80, TCPFlags: ofsim.TCPSyn}
	}
	linkLocal := netip.MustParseAddr("fe80::1")
	toLinkLocal := func(p ofsim.Packet) ofsim.Packet {
		p.Dst = linkLocal
		return p
	}
	for _, tt := range []struct {
		name string
		p    ofsim.Packet
		to   []uint32 // the only ports it may leave by
		by   string
	}{
		{"a chute solicits the gateway", ns(web, six(web), topo.Gateway6, web.mac), []uint32{gw.port}, "chute web resolves the gateway fd70:6472:6f70::1"},
		{"a chute solicits the gateway from its link-local address", ns(web, linkLocal, topo.Gateway6, web.mac), []uint32{gw.port}, "chute web resolves the gateway fd70:6472:6f70::1"},
		{"a chute solicits its peer", ns(web, six(web), six(db), web.mac), []uint32{db.port}, "chute web resolves its peer db over IPv6"},
		{"a chute solicits a chute it may not reach", ns(db, six(db), six(lonely), db.mac), nil, "chute db: neighbour discovery for undeclared hosts dropped"},
		{"a chute solicits a LAN host", ns(db, six(db), lanV6[0], db.mac), nil, "chute db: neighbour discovery for undeclared hosts dropped"},
		{"a chute answering LAN users (expose, redirect) solicits a LAN host", ns(web, six(web), lanV6[0], web.mac), topo.LANPorts, "LAN hosts not learned: every LAN port"},
		{"a chute answering LAN users solicits a host beyond the LAN's prefix", ns(web, six(web), netip.MustParseAddr("2001:db8:2::20"), web.mac), nil, "chute web: neighbour discovery for undeclared hosts dropped"},
		{"a chute's solicitation naming another's MAC", ns(web, six(web), topo.Gateway6, db.mac), nil, "chute web: spoofed neighbour discovery (ICMPv6 135) dropped"},
		{"a chute answers the gateway", na(web, six(web), six(web), gw, web.mac), []uint32{gw.port}, "chute web answers the gateway's solicitations"},
		{"a chute answers a unicast probe (no link-layer option)", na(web, six(web), six(web), gw, nil), []uint32{gw.port}, "chute web answers the gateway's solicitations"},
		// The gateway solicits from the address of the packet it resolves
		// for when that is its own (Linux's ndisc_solicit): from its LAN
		// address, in the LAN prefix a chute answering LAN users resolves.
		{"a chute answers the gateway's solicitation from its LAN address", toGatewayLAN(na(web, six(web), six(web), gw, web.mac)), []uint32{gw.port}, "chute web answers the gateway's solicitations"},
		{"a chute answering LAN users answers the gateway's solicitation from a link-local address", toLinkLocal(na(web, six(web), six(web), gw, web.mac)), []uint32{gw.port}, "chute web answers the gateway's solicitations"},
		{"a chute advertises another's address", na(web, six(web), six(db), gw, web.mac), nil, "chute web: spoofed neighbour discovery (ICMPv6 136) dropped"},
		{"a chute advertises its peer's address to that peer", na(web, six(web), six(db), db, web.mac), nil, "chute web: spoofed neighbour discovery (ICMPv6 136) dropped"},
		{"a chute advertises its address with another's MAC", na(web, six(web), six(web), gw, db.mac), nil, "chute web: spoofed neighbour discovery (ICMPv6 136) dropped"},
		{"a chute advertises to a non-peer", na(lonely, six(lonely), six(lonely), web, lonely.mac), nil, "chute lonely: neighbour discovery for undeclared hosts dropped"},
		{"a chute sends as another's IPv6 address", syn(web, gw.mac, six(db), topo.Gateway6), nil, "chute web: spoofed or other traffic dropped"},
		{"the gateway solicits a chute", ns(gw, topo.Gateway6, six(web), gw.mac), []uint32{web.port}, "the gateway resolves chute web over IPv6"},
		{"the gateway solicits an unknown chute address", ns(gw, topo.Gateway6, netip.MustParseAddr("fd70:6472:6f70::99"), gw.mac), nil, "gateway neighbour solicitations for unknown chute addresses dropped"},
		{"the gateway solicits a chute's global address", ns(gw, topo.Gateway6, global(web), gw.mac), []uint32{web.port}, "the gateway resolves chute web over IPv6 (from its global address)"},
		{"the gateway solicits an unknown global chute address", ns(gw, topo.Gateway6, netip.MustParseAddr("2001:db8:6400::99"), gw.mac), nil, "gateway neighbour solicitations for unknown chute addresses dropped"},
		{"a chute advertises its global address", na(web, global(web), global(web), gw, web.mac), []uint32{gw.port}, "chute web answers the gateway's solicitations"},
		{"a chute advertises another's global address", na(web, global(web), global(db), gw, web.mac), nil, "chute web: spoofed neighbour discovery (ICMPv6 136) dropped"},
		{"a chute sends as another's global address", syn(web, gw.mac, global(db), cloud6), nil, "chute web: spoofed or other traffic dropped"},
		{"a LAN host probes a chute's global address", probe(lan1, lanV6[0], scan, global(scan)), []uint32{scan.port}, "LAN hosts probe chute scan (unicast solicitations) (from its global address)"},
		{"the gateway answers a chute", na(gw, topo.Gateway6, topo.Gateway6, web, gw.mac), []uint32{web.port}, "the gateway answers chute web's solicitations"},
		{"the gateway solicits a LAN host", ns(gw, linkLocal, lanV6[0], gw.mac), topo.LANPorts, "LAN hosts not learned: every LAN port"},
		{"a LAN host solicits a chute", ns(lan1, lanV6[0], six(web), lan1.mac), []uint32{topo.LANPorts[1], gw.port}, "LAN neighbour discovery to the gateway and the LAN"},
		{"a LAN host solicits a chute that may reach it", ns(lan1, lanV6[0], six(scan), lan1.mac), []uint32{topo.LANPorts[1], gw.port}, "LAN neighbour discovery to the gateway and the LAN"},
		{"a LAN host probes a chute that may reach it", probe(lan1, lanV6[0], scan), []uint32{scan.port}, "LAN hosts probe chute scan (unicast solicitations)"},
		{"a LAN host probes a chute that may not reach it", probe(lan1, lanV6[0], db), []uint32{topo.LANPorts[1], gw.port}, "LAN neighbour discovery to the gateway and the LAN"},
		{"a LAN host advertises to a chute answering LAN users", na(lan1, lanV6[0], lanV6[0], web, lan1.mac), []uint32{web.port}, "LAN hosts answer chute web's solicitations"},
		{"a LAN host advertises to a chute that neither reaches nor answers it", na(lan1, lanV6[0], lanV6[0], db, lan1.mac), []uint32{topo.LANPorts[1], gw.port}, "LAN neighbour discovery to the gateway and the LAN"},
		{"a LAN host advertises to a chute that may reach it", na(lan1, lanV6[0], lanV6[0], scan, lan1.mac), []uint32{scan.port}, "LAN hosts answer chute scan's solicitations"},
		{"a chute solicits a declared LAN host", ns(scan, six(scan), lanV6[1], scan.mac), topo.LANPorts, "LAN hosts not learned: every LAN port"},
		{"a LAN host's IPv6 to a chute's MAC", syn(lan1, web.mac, lanV6[0], six(web)), nil, "unsolicited LAN IPv6 to chutes dropped"},
		{"the gateway's IPv6 from the LAN address to a chute", syn(gw, web.mac, lanV6[1], six(web)), nil, "unsolicited gateway IPv6 to chutes dropped"},
	} {
		sw.Reset()
		tr, err := sw.Run(tt.p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tr.Note() != tt.by {
			t.Errorf("%s: decided by %q, want %q", tt.name, tr.Note(), tt.by)
		}
		var ports []uint32
		for _, o := range tr.Outputs {
			ports = append(ports, o.Port)
		}
		if !slices.Equal(ports, tt.to) {
			t.Errorf("%s: out of ports %v, want %v", tt.name, ports, tt.to)
		}
	}
}
