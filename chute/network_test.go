package chute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"paradrop/chute/manifest"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// netGateway is a gateway whose network side (OVS, bridge, controller)
// lives in a namespace of the test's own, with one LAN device behind it.
type netGateway struct {
	*gateway
	gw, lan *nettest.Host
	cfg     sdn.Config
	net     *sdn.Network
}

var (
	testLANAddr = netip.MustParsePrefix("198.51.100.1/24")
	testLANHost = netip.MustParsePrefix("198.51.100.20/24")
)

func newNetGateway(t *testing.T, dir string, gw, lan *nettest.Host) *netGateway {
	t.Helper()
	return newNetGatewayWith(t, dir, gw, lan, func(*Config) {})
}

// newNetGatewayWith is newNetGateway with the manager's configuration
// adjusted.
func newNetGatewayWith(t *testing.T, dir string, gw, lan *nettest.Host, adjust func(*Config)) *netGateway {
	t.Helper()
	return newNetGatewayNet(t, dir, gw, lan, func(*sdn.Config) {}, adjust)
}

// newNetGatewayNet is newNetGatewayWith with the network's configuration
// adjusted too.
func newNetGatewayNet(t *testing.T, dir string, gw, lan *nettest.Host, adjustNet func(*sdn.Config), adjust func(*Config)) *netGateway {
	t.Helper()
	cfg := sdn.Config{DataDir: dir, NetNS: gw.NetNS, LANPorts: []string{"lan0"}, LANAddr: testLANAddr, Logf: t.Logf}
	adjustNet(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := sdn.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// As serve configures the manager from the network.
	g := newGatewayWith(t, dir, func(c *Config) {
		c.Network, c.Subnet, c.Subnet6, c.Global6 = n, sdn.DefaultSubnet, n.Subnet6(), n.Global6()
		adjust(c)
	})
	return &netGateway{gateway: g, gw: gw, lan: lan, cfg: cfg, net: n}
}

// stop ends the daemon side, network included, as a daemon exit does.
func (ng *netGateway) stop() {
	ng.shutdown()
	ng.net.Close(context.Background())
}

// fetch GETs / at addr from the LAN device.
func fetch(t *testing.T, h *nettest.Host, addr string) (string, error) {
	c, err := nettest.Dial(t, h, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestExposedChuteThroughTheSwitch installs a chute that exposes its web
// server, fetches its page from a LAN device through the gateway's port,
// restarts the whole daemon side and fetches it again from the same
// re-adopted process, then removes it and finds the port closed.
func TestExposedChuteThroughTheSwitch(t *testing.T) {
	nettest.Require(t, "busybox")
	gw, lan := nettest.NewHost(t), nettest.NewHost(t)
	nettest.Veth(t, nettest.End{Host: lan, If: "eth0", Addr: testLANHost}, nettest.End{Host: gw, If: "lan0"})
	lan.Route(t, netip.Prefix{}, testLANAddr.Addr())
	dir := t.TempDir()

	ng := newNetGateway(t, dir, gw, lan)
	ng.install(pkg(t, `
name: web
version: 1.0.0
command: ["/usr/sbin/httpd", "-f", "-p", "80", "-h", "/www"]
net:
  expose: [{port: 80, gateway_port: 8001}]
`, map[string]string{"www/index.html": "hello from the web chute"}))
	page := netip.AddrPortFrom(testLANAddr.Addr(), 8001).String()
	var body string
	eventually(t, 20*time.Second, "the exposed page from the LAN", func() bool {
		body, _ = fetch(t, lan, page)
		return strings.Contains(body, "hello from the web chute")
	})
	if _, err := fetch(t, lan, netip.AddrPortFrom(testLANAddr.Addr(), 8002).String()); err == nil {
		t.Error("an unexposed gateway port answered")
	}
	// A bandwidth policy lands in the switch as the chute's meters, live.
	egress := manifest.Rate(5_000_000)
	c := ng.mustDo(ng.m.SetResources("web", ResourceRequest{Policy: Policy{Bandwidth: &BandwidthPolicy{Egress: &egress}}}, ""))
	if !strings.Contains(fmt.Sprint(c.Steps), "egress=5Mbit") || !strings.Contains(fmt.Sprint(c.Steps), "applied") {
		t.Errorf("bandwidth change steps: %v", c.Steps)
	}
	meters, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", "unix:"+filepath.Join(dir, "ovs", "pdbr0.mgmt")).CombinedOutput()
	if err != nil || !strings.Contains(string(meters), "rate=5000") {
		t.Errorf("no 5000 kbps meter in the switch (%v):\n%s", err, meters)
	}

	before, _ := ng.m.Get("web")
	if before.IP != "10.131.0.11" || before.Traffic == nil || before.Traffic.RxPackets == 0 || before.Traffic.TxBytes == 0 {
		t.Errorf("chute info: ip %q, traffic %+v: want the address of slot 1 and the page's packets counted", before.IP, before.Traffic)
	}
	// Its IPv6 address, in its info, is on its interface: the gateway
	// fetches the page there.
	if want := sdn.AddressFor6(sdn.DefaultSubnet, ng.net.Subnet6(), netip.MustParseAddr("10.131.0.11")); before.IPv6 != want.String() || !want.IsValid() {
		t.Errorf("chute info: ipv6 %q, want %s", before.IPv6, want)
	} else if body, err := fetch(t, gw, netip.AddrPortFrom(want, 80).String()); !strings.Contains(body, "hello from the web chute") {
		t.Errorf("the page from the gateway over IPv6: %q, %v", body, err)
	}

	ng.stop()
	ng = newNetGateway(t, dir, gw, lan)
	defer func() { ng.removeAll(); ng.net.Close(context.Background()) }()
	eventually(t, 30*time.Second, "the page again after a daemon restart", func() bool {
		body, _ = fetch(t, lan, page)
		return strings.Contains(body, "hello from the web chute")
	})
	if after, _ := ng.m.Get("web"); after.Pid != before.Pid {
		t.Errorf("chute restarted (pid %d -> %d) instead of being re-adopted", before.Pid, after.Pid)
	}

	ng.mustDo(ng.m.Remove("web", false, ""))
	if _, err := fetch(t, lan, page); err == nil {
		t.Error("the page is still served after the chute was removed")
	}
}

// A chute cannot expose a port the gateway itself serves: its traffic
// would be taken from the API, SSH or DNS.
func TestExposeRefusesGatewayPorts(t *testing.T) {
	g := newGatewayWith(t, t.TempDir(), func(c *Config) {
		c.GatewayPorts = []GatewayPort{{8080, "tcp", "the API"}, {53, "udp", "DNS"}}
	})
	defer g.removeAll()
	exposing := func(version, expose string) []byte {
		return pkg(t, fmt.Sprintf("name: web\nversion: %s\ncommand: [/bin/sleep, \"1000\"]\nnet:\n  expose: [%s]\n", version, expose), nil)
	}
	_, err := g.m.Install(context.Background(), bytes.NewReader(exposing("1.0.0", "{port: 80, gateway_port: 8080}")), Origin{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "net.expose[0].gateway_port: 8080/tcp is the gateway's own port, used by the API") {
		t.Errorf("exposing the API port: %v", err)
	}
	// The same number over the other protocol is free.
	g.install(exposing("1.0.0", "{port: 53, gateway_port: 53, proto: tcp}"))
	_, err = g.m.Update(context.Background(), "web", bytes.NewReader(exposing("1.1.0", "{port: 53, gateway_port: 53, proto: udp}")), false, Origin{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "53/udp is the gateway's own port, used by DNS") {
		t.Errorf("update exposing DNS: %v", err)
	}
}

// What the switch cannot enforce is refused at install and update, with a
// message naming the field, rather than installed and silently skipped:
// an IPv4-mapped IPv6 address is no address the switch matches on
// (IPv6 LAN hosts and redirects are enforced).
func TestNetRefusesWhatTheSwitchCannotEnforce(t *testing.T) {
	g := newGatewayWith(t, t.TempDir(), func(*Config) {})
	defer g.removeAll()
	withNet := func(version, net string) []byte {
		return pkg(t, fmt.Sprintf("name: web\nversion: %s\ncommand: [/bin/sleep, \"1000\"]\nnet:\n%s\n", version, net), nil)
	}
	for _, tt := range []struct{ net, want string }{
		{"  redirect: [{to: \"[::ffff:203.0.113.5]:443\", port: 8443, proto: tcp}]", "net.redirect[0].to: [::ffff:203.0.113.5]:443 is an IPv4-mapped IPv6 address"},
	} {
		_, err := g.m.Install(context.Background(), bytes.NewReader(withNet("1.0.0", tt.net)), Origin{})
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, sdn.ErrUnenforceable) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("install with %s: %v; want ErrInvalid saying %q", tt.net, err, tt.want)
		}
		if _, err := g.m.Get("web"); err == nil {
			t.Errorf("install with %s left a chute behind", tt.net)
		}
	}
	g.install(withNet("1.0.0", "  lan: [{ip: 198.51.100.20}, {ip: \"2001:db8::5\"}]"))
	_, err := g.m.Update(context.Background(), "web", bytes.NewReader(withNet("1.1.0", "  redirect: [{to: \"[::ffff:203.0.113.5]:443\", port: 8443, proto: tcp}]")), false, Origin{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "net.redirect[0].to: [::ffff:203.0.113.5]:443 is an IPv4-mapped") {
		t.Errorf("update to an IPv4-mapped redirect: %v", err)
	}
	if in, _ := g.m.Get("web"); in.Version != "1.0.0" {
		t.Errorf("version %q after a refused update, want 1.0.0", in.Version)
	}
}

func TestNetPolicy(t *testing.T) {
	p, err := netPolicy(manifest.Net{
		WAN:      true,
		LAN:      []manifest.LANRule{{IP: "198.51.100.20", Ports: []int{554}}, {CIDR: "192.0.2.0/28"}, {MAC: "02:aa:bb:cc:dd:ee"}},
		Expose:   []manifest.Expose{{Port: 80, GatewayPort: 8080, Proto: "tcp"}},
		Redirect: []manifest.Redirect{{To: "203.0.113.5:53", Port: 5353, Proto: "udp"}},
		Peers:    []string{"db"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := sdn.Policy{
		WAN: true,
		LAN: []sdn.LANRule{
			{Prefix: netip.MustParsePrefix("198.51.100.20/32"), Ports: []uint16{554}},
			{Prefix: netip.MustParsePrefix("192.0.2.0/28")},
			{MAC: net.HardwareAddr{2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}},
		},
		Expose:   []sdn.Expose{{Port: 80, GatewayPort: 8080, Proto: sdn.TCP}},
		Redirect: []sdn.Redirect{{To: netip.MustParseAddrPort("203.0.113.5:53"), Port: 5353, Proto: sdn.UDP}},
		Peers:    []string{"db"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("policy\n%+v\nwant\n%+v", p, want)
	}
}

// The LAN's IPv6 in the IPv6 tests: the gateway's address there, a LAN
// device, and the cloud address a chute redirects.
var (
	testLANAddr6 = netip.MustParsePrefix("2001:db8:1::1/64")
	testLANHost6 = netip.MustParsePrefix("2001:db8:1::20/64")
	testCloud6   = netip.MustParseAddrPort("[2001:db8:ffff::5]:80")
)

// TestExposedAndRedirectedOverIPv6 installs a chute exposing its web
// server and redirecting an IPv6 cloud address on a gateway with an IPv6
// LAN address, and fetches its page from a LAN device over IPv6: at the
// gateway's LAN address and port, and at the redirected address, which
// the device reaches through the gateway as its router. Nothing else of
// the chute answers: not another gateway port, not another port of the
// redirected address. The same on a gateway with a delegated prefix,
// where the chute also has a global address (and the gateway as its
// IPv6 router): the ways in still reach it at its ULA and its answers go
// back through them, and its global address is no way in.
func TestExposedAndRedirectedOverIPv6(t *testing.T) {
	nettest.Require(t, "busybox")
	for _, prefix6 := range []netip.Prefix{{}, netip.MustParsePrefix("2001:db8:6400::/56")} {
		name := "no delegated prefix"
		if prefix6.IsValid() {
			name = "delegated prefix " + prefix6.String()
		}
		t.Run(name, func(t *testing.T) {
			gw, lan := nettest.NewHost(t), nettest.NewHost(t)
			nettest.Veth(t, nettest.End{Host: lan, If: "eth0", Addr: testLANHost}, nettest.End{Host: gw, If: "lan0"})
			nettest.Exec(t, lan, "ip", "-6", "addr", "add", testLANHost6.String(), "dev", "eth0", "nodad")
			nettest.Exec(t, lan, "ip", "-6", "route", "add", "default", "via", testLANAddr6.Addr().String())
			ng := newNetGatewayNet(t, t.TempDir(), gw, lan, func(c *sdn.Config) { c.LANAddr6, c.Prefix6 = testLANAddr6, prefix6 }, func(*Config) {})
			defer func() { ng.removeAll(); ng.net.Close(context.Background()) }()
			ng.install(pkg(t, fmt.Sprintf(`
name: web
version: 1.0.0
command: ["/usr/sbin/httpd", "-f", "-p", "80", "-h", "/www"]
net:
  expose: [{port: 80, gateway_port: 8001}]
  redirect: [{to: "%s", port: 80}]
`, testCloud6), map[string]string{"www/index.html": "hello from the web chute"}))
			for _, addr := range []netip.AddrPort{netip.AddrPortFrom(testLANAddr6.Addr(), 8001), testCloud6} {
				eventually(t, 20*time.Second, "the page from the LAN at "+addr.String(), func() bool {
					body, _ := fetch(t, lan, addr.String())
					return strings.Contains(body, "hello from the web chute")
				})
			}
			closed := []netip.AddrPort{netip.AddrPortFrom(testLANAddr6.Addr(), 8002), netip.AddrPortFrom(testCloud6.Addr(), 81)}
			in, err := ng.m.Get("web")
			if err != nil {
				t.Fatal(err)
			}
			if prefix6.IsValid() {
				global, err := netip.ParseAddr(in.IPv6Global)
				if err != nil || !prefix6.Contains(global) {
					t.Fatalf("the chute's global address %q is not in the delegated %s", in.IPv6Global, prefix6)
				}
				closed = append(closed, netip.AddrPortFrom(global, 80))
			}
			for _, addr := range closed {
				if body, err := fetch(t, lan, addr.String()); err == nil {
					t.Errorf("%s answered the LAN: %q", addr, body)
				}
			}
		})
	}
}

// An IPv6 redirect on a gateway without an IPv6 LAN address (the chute
// could not resolve the users it answers) is refused at install, naming
// the field and the option, and nothing is left of the chute.
func TestNetRefusesIPv6RedirectWithoutLANAddr6(t *testing.T) {
	gw, lan := nettest.NewHost(t), nettest.NewHost(t)
	nettest.Veth(t, nettest.End{Host: lan, If: "eth0", Addr: testLANHost}, nettest.End{Host: gw, If: "lan0"})
	ng := newNetGateway(t, t.TempDir(), gw, lan)
	defer func() { ng.removeAll(); ng.net.Close(context.Background()) }()
	_, err := ng.m.Install(context.Background(), bytes.NewReader(pkg(t, fmt.Sprintf(
		"name: web\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nnet:\n  redirect: [{to: \"%s\", port: 80}]\n", testCloud6), nil)), Origin{})
	if want := "net.redirect[0].to: " + testCloud6.String() + " is IPv6 and this gateway has no IPv6 LAN address (serve --lan-addr6)"; !errors.Is(err, ErrInvalid) || !errors.Is(err, sdn.ErrUnenforceable) || !strings.Contains(err.Error(), want) {
		t.Errorf("install of an IPv6 redirect: %v; want ErrInvalid saying %q", err, want)
	}
	if _, err := ng.m.Get("web"); err == nil {
		t.Error("the refused install left a chute behind")
	}
}
