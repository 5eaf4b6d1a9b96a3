package sdn

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"paradrop/netconf/nettest"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ofsim"
)

// The chutes' API port at the gateway's address is reached by chutes, and
// by nothing else: not the LAN, not the gateway's own processes; and it
// opens no other port of the gateway to chutes.
func TestChuteAPIOnlyForChutes(t *testing.T) {
	const port = 8443
	tb := newTestbed(t, func(c *Config) { c.APIPort = port })
	servePeer(t, tb.n.ListenAPI, ip(tb.n.gateway, port))
	nettest.StartTCPServer(t, tb.gw, ip(tb.n.gateway, port+1))
	h, c := tb.chute(t, "app", 0, Policy{}, Bandwidth{})

	if seen := mustReach(t, "the chutes' API", h, ip(tb.n.gateway, port)); !strings.HasPrefix(seen, c.IP.String()+":") {
		t.Errorf("the API saw %q, want the chute's own address", seen)
	}
	mustNotReach(t, "another port of the gateway", h, ip(tb.n.gateway, port+1))
	mustNotReach(t, "the chutes' API from the LAN", tb.lan1, ip(tb.n.gateway, port))
	mustNotReach(t, "the chutes' API at the LAN address", tb.lan1, ip(lanGW.Addr(), port))
	mustNotReach(t, "the chutes' API from the gateway itself", tb.gw, ip(tb.n.gateway, port))

	// The same over IPv6, at the gateway's ULA, from a LAN host that
	// takes the chutes' /64 for its link.
	servePeer(t, tb.n.ListenAPI6, ip(tb.n.gateway6, port))
	nettest.StartTCPServer(t, tb.gw, ip(tb.n.gateway6, port+1))
	nettest.Exec(t, tb.lan1, "ip", "-6", "addr", "add", netip.PrefixFrom(lanV6[0], 64).String(), "dev", "eth0", "nodad")
	nettest.Exec(t, tb.lan1, "ip", "-6", "route", "add", tb.n.cfg.Subnet6.String(), "dev", "eth0")
	own6 := tb.n.Address6(c.IP)
	if seen := mustReach(t, "the chutes' API over IPv6", h, ip(tb.n.gateway6, port)); !strings.HasPrefix(seen, "["+own6.String()+"]:") {
		t.Errorf("the API saw %q, want the chute's own IPv6 address %s", seen, own6)
	}
	mustNotReach(t, "another port of the gateway over IPv6", h, ip(tb.n.gateway6, port+1))
	mustNotReach(t, "the chutes' API over IPv6 from the LAN", tb.lan1, ip(tb.n.gateway6, port))
	mustNotReach(t, "the chutes' API over IPv6 from the gateway itself", tb.gw, ip(tb.n.gateway6, port))
}

// servePeer listens with listen, which must be at want, and tells every
// client its own address.
func servePeer(t *testing.T, listen func() (net.Listener, error), want string) {
	t.Helper()
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if got := ln.Addr().String(); got != want {
		t.Errorf("the chutes' API listens on %s, want %s", got, want)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.RemoteAddr())
			c.Close()
		}
	}()
}

// The chutes' API over IPv6, in the simulator: each chute reaches its
// port at the gateway's ULA, from either of its addresses; no other port
// of the gateway, and not the LAN (the guard keeps the gateway's own
// processes out, see TestChuteAPIOnlyForChutes).
func TestChuteAPIOverIPv6Simulated(t *testing.T) {
	topo, chutes, lanMACs := simTopo()
	topo.APIPort = 8443
	w := newSimWorld(topo, chutes, lanMACs)
	for _, c := range []reachCase{
		{from: "db", to: "gw:8443", six: true, want: true, by: "chute db may use the paradrop API at the gateway [fd70:6472:6f70::1]:8443/tcp"},
		{from: "web", to: "gw:8443", want: true, by: "chute web may use the paradrop API at the gateway 10.131.0.1:8443/tcp"},
		{from: "db", to: "gw:8444", six: true, want: false, by: "chute db: IPv6 default deny"},
		{from: "lan1", to: "gw:8443", six: true, want: false, by: "unsolicited LAN IPv6 to chutes dropped"},
	} {
		ok, notes := mustRun(t, w, c)
		if ok != c.want || !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, c.by) }) {
			t.Errorf("%s -> %s (IPv6 %v): reached %v by %q, want %v by %q", c.from, c.to, c.six, ok, notes, c.want, c.by)
		}
	}
	// From its global address too, which it would use for a global
	// destination.
	global := w.addr("web", true, true)
	sw := w.sw
	sw.Reset()
	p := chutePacket(w, chutes[slices.IndexFunc(chutes, func(a *attached) bool { return a.Name == "web" })], topo.Gateway6, ofsim.ProtoTCP, ofsim.TCPSyn)
	p.Src, p.DstPort, p.EthDst = global, 8443, topo.GatewayMAC
	tr, err := sw.Run(p)
	if err != nil {
		t.Fatal(err)
	}
	const by = "chute web may use the paradrop API at the gateway [fd70:6472:6f70::1]:8443/tcp (from its global address)"
	if len(tr.OutputTo(ofp.PortLocal)) != 1 || !slices.ContainsFunc(tr.Steps, func(s ofsim.Step) bool { return s.Flow != nil && s.Flow.Note == by }) {
		t.Errorf("web's SYN to the API from %s: out of %v, last by %q; want to the gateway by %q", global, tr.Outputs, tr.Note(), by)
	}
}
