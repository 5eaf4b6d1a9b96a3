package sdn

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/sdn/ofp"
	"paradrop/sdn/ofsim"
	"paradrop/sdn/ovs"
)

// The integration tests run a whole gateway in a namespace of its own (its
// OVS, bridge, nftables and WAN uplink), with LAN devices and a cloud host
// in further namespaces: nothing touches the machine's own network.

var (
	lanGW    = netip.MustParsePrefix("198.51.100.1/24")
	lan1Addr = netip.MustParseAddr("198.51.100.20")
	lan2Addr = netip.MustParseAddr("198.51.100.21")
	cloudIP  = netip.MustParseAddr("203.0.113.5")
	wanGW    = netip.MustParseAddr("203.0.113.1")
)

type testbed struct {
	cfg        Config
	n          *Network
	gw         *nettest.Host
	lan1, lan2 *nettest.Host
	cloud      *nettest.Host
}

func requireTools(t *testing.T) {
	t.Helper()
	nettest.Require(t, "busybox")
	if err := ovs.Installed(); err != nil {
		t.Fatalf("these tests need Open vSwitch: %v", err)
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newTestbed(t *testing.T, adjust ...func(*Config)) *testbed {
	t.Helper()
	requireTools(t)
	tb := &testbed{gw: nettest.NewHost(t), lan1: nettest.NewHost(t), lan2: nettest.NewHost(t), cloud: nettest.NewHost(t)}
	for _, l := range []struct {
		h    *nettest.Host
		addr netip.Addr
		port string
	}{{tb.lan1, lan1Addr, "lan1"}, {tb.lan2, lan2Addr, "lan2"}} {
		nettest.Veth(t, nettest.End{Host: l.h, If: "eth0", Addr: netip.PrefixFrom(l.addr, 24)}, nettest.End{Host: tb.gw, If: l.port})
		l.h.Route(t, netip.Prefix{}, lanGW.Addr()) // the gateway is the LAN's router
	}
	nettest.Veth(t, nettest.End{Host: tb.cloud, If: "eth0", Addr: netip.PrefixFrom(cloudIP, 24)},
		nettest.End{Host: tb.gw, If: "wan0", Addr: netip.PrefixFrom(wanGW, 24)})
	tb.cfg = Config{
		DataDir: t.TempDir(), NetNS: tb.gw.NetNS, LANPorts: []string{"lan1", "lan2"}, LANAddr: lanGW, LANAddr6: lanGW6,
		WAN: "wan0", RepairInterval: time.Second, Logf: t.Logf,
	}
	for _, a := range adjust {
		a(&tb.cfg)
	}
	tb.open(t)
	return tb
}

func (tb *testbed) open(t *testing.T) {
	t.Helper()
	n, err := Open(testCtx(t, 90*time.Second), tb.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb.n = n
	t.Cleanup(func() {
		if tb.n == n {
			if err := n.Close(context.Background()); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
}

// chute creates a chute namespace and attaches it in slot.
func (tb *testbed) chute(t *testing.T, name string, slot int, nt Policy, bw Bandwidth) (*nettest.Host, Chute) {
	t.Helper()
	ns := filepath.Join(t.TempDir(), name)
	if err := netconf.EnsureNetNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netconf.DeleteNetNS(ns) })
	c := Chute{Name: name, NetNS: ns, MAC: netconf.MACFor(name), IP: AddressFor(tb.n.cfg.Subnet, slot), Net: nt, Bandwidth: bw}
	if err := tb.n.Attach(testCtx(t, 60*time.Second), c); err != nil {
		t.Fatal(err)
	}
	return &nettest.Host{Name: name, NetNS: ns}, c
}

// reach dials addr from h and returns the address the server saw; the
// error says the connection failed.
func reach(t *testing.T, h *nettest.Host, addr string) (string, error) {
	return nettest.PeerAddr(t, h, addr, 3*time.Second)
}

func mustReach(t *testing.T, what string, h *nettest.Host, addr string) string {
	t.Helper()
	seen, err := reach(t, h, addr)
	if err != nil {
		t.Errorf("%s: %s should reach %s: %v", what, h.Name, addr, err)
	}
	return seen
}

func mustNotReach(t *testing.T, what string, h *nettest.Host, addr string) {
	t.Helper()
	if seen, err := reach(t, h, addr); err == nil {
		t.Errorf("%s: %s reached %s (server saw %s), want no connection", what, h.Name, addr, seen)
	}
}

// ping succeeds if any of three echoes is answered: one lost packet while
// the first ARP resolves on a loaded machine is not a reachability result.
func ping(h *nettest.Host, addr netip.Addr) error {
	_, err := nettest.Run(h, "busybox", "ping", "-c", "3", "-W", "2", addr.String())
	return err
}

// packets returns the packet count of the rule whose text is note.
func (tb *testbed) packets(t *testing.T, chute, note string) uint64 {
	t.Helper()
	rules, err := tb.n.Flows(testCtx(t, 20*time.Second), chute)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	found := false
	for _, r := range rules {
		if r.Rule == note {
			sum += r.Packets
			found = found || r.Installed
		}
	}
	if !found {
		t.Fatalf("no installed rule %q of %q", note, chute)
	}
	return sum
}

// dropsIn runs fn and checks that it made the switch count packets on the
// drop rule note: the packets died in the bridge, not in some host.
func (tb *testbed) dropsIn(t *testing.T, chute, note string, fn func()) {
	t.Helper()
	before := tb.packets(t, chute, note)
	fn()
	if after := tb.packets(t, chute, note); after <= before {
		t.Errorf("rule %q counted %d packets before and %d after: the drop did not happen in the switch", note, before, after)
	}
}

func ip(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

func httpd(t *testing.T, h *nettest.Host, port int, page string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	nettest.Start(t, h, "busybox", "httpd", "-f", "-p", fmt.Sprint(port), "-h", dir)
}

// get fetches / from the HTTP server at addr, from h.
func get(t *testing.T, h *nettest.Host, addr string) (string, error) {
	c, err := nettest.Dial(t, h, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestReachability(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the matrix against real Open vSwitch needs root; TestMatrixSimulated runs it without")
	}
	tb := newTestbed(t, func(c *Config) { c.Prefix6 = simPrefix6 })
	lanMACs := []net.HardwareAddr{macOf(t, tb.lan1), macOf(t, tb.lan2)}
	hosts := map[string]*nettest.Host{"lan1": tb.lan1, "lan2": tb.lan2, "cloud": tb.cloud, "gw": tb.gw, "gwlan": tb.gw}
	chutes := map[string]Chute{}
	for _, mc := range matrixChutes(lanMACs[1]) {
		hosts[mc.name], chutes[mc.name] = tb.chute(t, mc.name, mc.slot, mc.net, Bandwidth{})
	}
	web, webC := hosts["web"], chutes["web"]
	db, dbC := hosts["db"], chutes["db"]
	lonely, lonelyC := hosts["lonely"], chutes["lonely"]
	cam := hosts["cam"]
	httpd(t, web, 80, "hello from web\n")
	httpd(t, cam, 80, "hello from cam\n")
	tb.matrixIPv6(t, hosts)
	tb.startMatrixServers(t, hosts, map[string]bool{"web:80": true, "cam:80": true})

	t.Run("matrix", func(t *testing.T) { tb.matrix(t, hosts, lanMACs) })
	t.Run("gateway", func(t *testing.T) {
		if err := ping(web, tb.n.gateway); err != nil {
			t.Errorf("web cannot ping the gateway: %v", err)
		}
		if err := ping(tb.lan1, lanGW.Addr()); err != nil {
			t.Errorf("LAN host cannot ping the gateway: %v", err)
		}
	})
	t.Run("wan", func(t *testing.T) {
		if seen := mustReach(t, "wan: true", web, ip(cloudIP, 80)); !strings.HasPrefix(seen, wanGW.String()+":") {
			t.Errorf("cloud saw %q, want the gateway's WAN address %s (masquerade)", seen, wanGW)
		}
		tb.dropsIn(t, "db", "chute db: default deny", func() {
			mustNotReach(t, "no wan", db, ip(cloudIP, 80))
		})
	})
	t.Run("wan over IPv6", func(t *testing.T) {
		// Routed, not masqueraded: the cloud sees the chute's global
		// address, not its ULA nor the gateway's.
		global := tb.n.AddressGlobal6(webC.IP)
		if seen := mustReach(t, "wan: true", web, netip.AddrPortFrom(cloud6, 80).String()); !strings.HasPrefix(seen, "["+global.String()+"]:") {
			t.Errorf("cloud saw %q, want the chute's global address %s", seen, global)
		}
		tb.dropsIn(t, "db", "chute db: IPv6 default deny", func() {
			mustNotReach(t, "no wan", db, netip.AddrPortFrom(cloud6, 80).String())
		})
	})
	t.Run("lan", func(t *testing.T) {
		if seen := mustReach(t, "declared LAN host and port", web, ip(lan1Addr, 554)); !strings.HasPrefix(seen, webC.IP.String()+":") {
			t.Errorf("LAN host saw %q, want the chute's own address", seen)
		}
		tb.dropsIn(t, "web", "chute web: undeclared LAN hosts denied", func() {
			mustNotReach(t, "declared LAN host, other port", web, ip(lan1Addr, 22))
		})
		// web resolves any LAN host (it answers exposed ports), so the
		// connection itself is what dies.
		tb.dropsIn(t, "web", "chute web: undeclared LAN hosts denied", func() {
			mustNotReach(t, "undeclared LAN host", web, ip(lan2Addr, 554))
		})
		mustNotReach(t, "chute without lan rules", db, ip(lan1Addr, 554))
	})
	t.Run("expose", func(t *testing.T) {
		if page, err := get(t, tb.lan1, ip(lanGW.Addr(), 8080)); err != nil || !strings.HasSuffix(page, "\r\n\r\nhello from web\n") {
			t.Errorf("LAN user fetching the exposed port: %q, %v; want the chute's page", page, err)
		}
		mustNotReach(t, "unexposed gateway port", tb.lan1, ip(lanGW.Addr(), 81))
		if page, err := get(t, tb.lan1, ip(lanGW.Addr(), 8082)); err != nil || !strings.HasSuffix(page, "\r\n\r\nhello from cam\n") {
			t.Errorf("LAN user fetching the port exposed by a chute that may reach it: %q, %v; want the chute's page", page, err)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		c, err := nettest.Dial(t, tb.lan1, ip(cloudIP, 80), 3*time.Second)
		if err != nil {
			t.Fatalf("LAN user to the redirected cloud address: %v", err)
		}
		if got := c.RemoteAddr().String(); got != ip(cloudIP, 80) {
			t.Errorf("LAN user talks to %s, want %s", got, ip(cloudIP, 80))
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		// The chute's server sees the LAN user itself; the real cloud would
		// see the gateway's WAN address.
		if err != nil || !strings.HasPrefix(line, lan1Addr.String()+":") {
			t.Errorf("redirected request answered with %q, %v; want the chute's server, which sees %s", line, err, lan1Addr)
		}
		// Other LAN users' traffic to the cloud is not redirected on
		// other ports... and LAN hosts still reach the WAN through the
		// gateway only as the gateway routes them: nothing here.
	})
	t.Run("peers", func(t *testing.T) {
		if seen := mustReach(t, "mutual peers", web, ip(dbC.IP, 5432)); !strings.HasPrefix(seen, webC.IP.String()+":") {
			t.Errorf("db saw %q, want web's address", seen)
		}
		mustReach(t, "mutual peers", db, ip(webC.IP, 81))
		tb.dropsIn(t, "lonely", "chute lonely: ARP for undeclared hosts dropped", func() {
			mustNotReach(t, "one-sided peers", lonely, ip(webC.IP, 81))
		})
		mustNotReach(t, "one-sided peers", web, ip(lonelyC.IP, 5432))
		mustNotReach(t, "no peers", db, ip(lonelyC.IP, 5432))
	})
	t.Run("unsolicited", func(t *testing.T) {
		tb.dropsIn(t, "", "unsolicited LAN traffic to chutes dropped", func() {
			mustNotReach(t, "LAN to chute", tb.lan1, ip(webC.IP, 81))
			if ping(tb.lan1, webC.IP) == nil {
				t.Errorf("LAN host pings chute web")
			}
		})
		mustNotReach(t, "WAN to chute", tb.cloud, ip(webC.IP, 81))
	})
	t.Run("trace", func(t *testing.T) {
		// The switch's own account of a chute without wan: dropped.
		out, err := exec.Command("ovs-appctl", "-t", filepath.Join(tb.cfg.DataDir, "ovs", "ovs-vswitchd.ctl"),
			"ofproto/trace", DefaultBridge, fmt.Sprintf("in_port=%d,tcp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,tp_dst=80",
				tb.n.chutes["db"].Port, dbC.MAC, tb.n.topo.GatewayMAC, dbC.IP, cloudIP), "--ct-next", "trk,new").CombinedOutput()
		if err != nil {
			t.Fatalf("ofproto/trace: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Datapath actions: drop") {
			t.Errorf("trace of db to the WAN does not end in a drop:\n%s", out)
		}
	})

	// Dropping a declaration takes effect live.
	webC.Net.LAN = nil
	if err := tb.n.Update(testCtx(t, 30*time.Second), webC); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, "after update without lan", web, ip(lan1Addr, 554))
	// So does an IPv6 one, its on-link route with it.
	scan, scanC := hosts["scan"], chutes["scan"]
	mustReach(t, "IPv6 LAN prefix before the update", scan, ip(lanV6[0], 554))
	scanC.Net.LAN = scanC.Net.LAN[:1]
	if err := tb.n.Update(testCtx(t, 30*time.Second), scanC); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, "after update without the IPv6 lan rule", scan, ip(lanV6[0], 554))
	if out := nettest.Exec(t, scan, "ip", "-6", "route", "show", "2001:db8:1::20/127"); strings.TrimSpace(out) != "" {
		t.Errorf("the IPv6 on-link route stays after the update: %s", out)
	}
	if err := tb.n.Detach(testCtx(t, 30*time.Second), "db"); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, "detached peer", web, ip(dbC.IP, 5432))
	if rules, err := tb.n.Flows(testCtx(t, 10*time.Second), "db"); err == nil {
		t.Errorf("flows of a detached chute: %v", rules)
	}
}

// warmup is the start of a transfer that rates leave out: the meter's
// burst allowance, spent at the start, is not its rate.
const warmup = time.Second

// count reads c to the end and returns the bits per second it got after
// warmup.
func count(c net.Conn) float64 {
	buf := make([]byte, 64<<10)
	var n int64
	var start time.Time
	var first time.Time
	for {
		k, err := c.Read(buf)
		now := time.Now()
		if k > 0 && first.IsZero() {
			first = now
		}
		if !first.IsZero() && now.Sub(first) >= warmup {
			if start.IsZero() {
				start = now
			} else {
				n += int64(k)
			}
		}
		if err != nil {
			break
		}
	}
	if start.IsZero() {
		return 0
	}
	return float64(n*8) / time.Since(start).Seconds()
}

// rate sends from h to addr for d and returns the bits per second the
// receiver got after warmup.
func rate(t *testing.T, from, to *nettest.Host, toAddr netip.Addr, d time.Duration) float64 {
	t.Helper()
	var ln net.Listener
	if err := netconf.InNetNS(to.NetNS, func() (err error) { ln, err = net.Listen("tcp", ip(toAddr, 0)); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	result := make(chan float64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			result <- 0
			return
		}
		defer c.Close()
		result <- count(c)
	}()
	c, err := nettest.Dial(t, from, ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	for end := time.Now().Add(d); time.Now().Before(end); {
		c.SetWriteDeadline(end)
		if _, err := c.Write(buf); err != nil {
			break
		}
	}
	c.Close()
	select {
	case r := <-result:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("receiver did not finish")
	}
	return 0
}

func TestMeter(t *testing.T) {
	tb := newTestbed(t)
	h, c := tb.chute(t, "fat", 0, Policy{LAN: []LANRule{{Prefix: netip.PrefixFrom(lan1Addr, 32)}}},
		Bandwidth{Egress: 20_000_000, Ingress: 10_000_000})
	// Every transfer must stay under the meter's rate (+15%). A transfer
	// can fall short of it without the meter's doing: on a loaded machine
	// the sender, the receiver and the userspace datapath share starved
	// CPUs, and no slowness can make a transfer beat the meter. So the
	// lower bound (-15%: the meter lets its rate through) holds if one of
	// a few transfers reaches it; a meter set too low fails them all.
	within := func(what string, want float64, measure func() float64) {
		t.Helper()
		const tries = 3
		for i := 1; ; i++ {
			got := measure()
			t.Logf("%s: %.2f Mbit/s (meter %.0f Mbit/s)", what, got/1e6, want/1e6)
			if got > 1.15*want {
				t.Errorf("%s: %.2f Mbit/s, above the meter's %.0f Mbit/s + 15%%", what, got/1e6, want/1e6)
				return
			}
			if got >= 0.85*want {
				return
			}
			if i == tries {
				t.Errorf("%s: %d transfers below the meter's %.0f Mbit/s - 15%% (last %.2f Mbit/s)", what, tries, want/1e6, got/1e6)
				return
			}
		}
	}
	within("egress", 20e6, func() float64 { return rate(t, h, tb.lan1, lan1Addr, 4*time.Second) })
	// A LAN host sends to the chute over a connection the chute opened
	// (unsolicited ones are dropped): the chute dials, the LAN host writes.
	within("ingress", 10e6, func() float64 { return rateIn(t, h, tb.lan1, c.IP, 4*time.Second) })

	c.Bandwidth.Egress = 8_000_000
	if err := tb.n.Update(testCtx(t, 30*time.Second), c); err != nil {
		t.Fatal(err)
	}
	within("egress after Update", 8e6, func() float64 { return rate(t, h, tb.lan1, lan1Addr, 4*time.Second) })
	cs, err := tb.n.Counters(testCtx(t, 10*time.Second), "fat")
	if err != nil {
		t.Fatal(err)
	}
	if cs.TxBytes < 5e6 || cs.RxBytes < 2e6 || cs.TxPackets == 0 || cs.RxPackets == 0 {
		t.Errorf("counters %+v after sending MBs both ways", cs)
	}
	// The usage sampler's reading of all chutes at once says the same
	// (give or take a late packet).
	all, err := tb.n.AllCounters(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if a := all["fat"]; len(all) != 1 || a.TxBytes < cs.TxBytes || a.RxBytes < cs.RxBytes ||
		a.TxBytes > cs.TxBytes+1e5 || a.RxBytes > cs.RxBytes+1e5 {
		t.Errorf("AllCounters = %+v, Counters(fat) = %+v", all, cs)
	}
}

// TestAllCountersIdle: the usage sampler reads every chute's counters each
// second. A call asks for the chutes' totals and dumps flows only where
// they moved, so calls on a quiet network dump nothing; a chute's traffic
// still shows at once, and every chute's figures are its own counters'.
func TestAllCountersIdle(t *testing.T) {
	tb := newTestbed(t)
	policy := Policy{LAN: []LANRule{{Prefix: netip.PrefixFrom(lan1Addr, 32)}}}
	ha, _ := tb.chute(t, "a", 0, policy, Bandwidth{})
	tb.chute(t, "b", 1, policy, Bandwidth{})
	ctx := testCtx(t, 2*time.Minute)
	dumps := func() uint64 {
		tb.n.counters.mu.Lock()
		defer tb.n.counters.mu.Unlock()
		return tb.n.counters.dumps
	}
	// quiet calls AllCounters until a call dumps nothing: once the chutes'
	// start-up chatter (IPv6 DAD and the like) and the switch's lagging
	// counters have settled.
	quiet := func(t *testing.T) map[string]Counters {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			before := dumps()
			all, err := tb.n.AllCounters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if dumps() == before {
				return all
			}
			if time.Now().After(deadline) {
				t.Fatalf("AllCounters dumped flows on every call for 15s (%d dumps)", dumps())
			}
			time.Sleep(600 * time.Millisecond) // OVS's revalidators: every 500ms
		}
	}
	// A first exchange makes the gateway learn the LAN host, which changes
	// the flows (and so makes every chute's figures be summed again).
	rate(t, ha, tb.lan1, lan1Addr, 200*time.Millisecond)
	// Chutes whose totals moved have their own flows dumped, or, beyond
	// maxChuteDumps, all flows at once.
	for _, perChute := range []int{maxChuteDumps, 0} {
		t.Run(fmt.Sprintf("maxChuteDumps=%d", perChute), func(t *testing.T) {
			defer func(v int) { maxChuteDumps = v }(maxChuteDumps)
			maxChuteDumps = perChute
			before := quiet(t)
			rate(t, ha, tb.lan1, lan1Addr, time.Second)
			var after map[string]Counters
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				var err error
				if after, err = tb.n.AllCounters(ctx); err != nil {
					t.Fatal(err)
				}
				if after["a"].TxBytes >= before["a"].TxBytes+100_000 || time.Now().After(deadline) {
					break
				}
			}
			if a := after["a"]; a.TxBytes < before["a"].TxBytes+100_000 || a.RxPackets <= before["a"].RxPackets {
				t.Errorf("a's counters went from %+v to %+v after a second of sending to the LAN", before["a"], a)
			}
			after = quiet(t)
			for _, name := range []string{"a", "b"} {
				own, err := tb.n.Counters(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if after[name] != own {
					t.Errorf("AllCounters()[%q] = %+v, its own counters %+v", name, after[name], own)
				}
			}
			if len(after) != 2 {
				t.Errorf("AllCounters = %+v, want a and b", after)
			}
		})
	}
}

// rateIn measures traffic into chute h: h connects to a sender in lan,
// which writes for d; h counts.
func rateIn(t *testing.T, h, lan *nettest.Host, chuteIP netip.Addr, d time.Duration) float64 {
	t.Helper()
	var ln net.Listener
	if err := netconf.InNetNS(lan.NetNS, func() (err error) { ln, err = net.Listen("tcp", ip(lan1Addr, 0)); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 16<<10)
		end := time.Now().Add(d)
		c.SetWriteDeadline(end)
		for time.Now().Before(end) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := nettest.Dial(t, h, ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(d + 20*time.Second))
	return count(c)
}

func TestRestart(t *testing.T) {
	tb := newTestbed(t)
	nettest.StartTCPServer(t, tb.lan1, ip(lan1Addr, 554))
	h, c := tb.chute(t, "web", 3, Policy{LAN: []LANRule{{Prefix: netip.PrefixFrom(lan1Addr, 32)}}}, Bandwidth{})
	mustReach(t, "before restarts", h, ip(lan1Addr, 554))

	eventually := func(what string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			_, err := reach(t, h, ip(lan1Addr, 554))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: connectivity did not come back: %v", what, err)
			}
			time.Sleep(time.Second)
		}
	}
	addrOf := func() string {
		return nettest.Exec(t, h, "busybox", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	}
	before := addrOf()

	// ovs-vswitchd crashes: the network restarts it and re-creates what
	// died with it; the controller re-installs the flows.
	pid, err := os.ReadFile(filepath.Join(tb.cfg.DataDir, "ovs", "ovs-vswitchd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("kill", "-9", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		t.Fatalf("kill ovs-vswitchd: %v: %s", err, out)
	}
	eventually("after ovs-vswitchd was killed")

	// The daemon restarts: controller and OVS stop and start again, and
	// the manager attaches its chutes anew.
	if err := tb.n.Close(testCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, "while the gateway is down", h, ip(lan1Addr, 554))
	tb.open(t)
	if err := tb.n.Attach(testCtx(t, 60*time.Second), c); err != nil {
		t.Fatal(err)
	}
	eventually("after the gateway restarted")
	if after := addrOf(); after != before {
		t.Errorf("chute address changed across restarts:\n%s\n%s", before, after)
	}
}

// TestPortDeletedByHand: a chute's port deleted from the bridge by hand is
// back within a few repair ticks, seen from the switch's PORT_STATUS by the
// repair loop's quick look, without waiting for the periodic full repair
// (disabled here).
func TestPortDeletedByHand(t *testing.T) {
	defer func(v int) { fullRepairEvery = v }(fullRepairEvery)
	fullRepairEvery = math.MaxInt
	tb := newTestbed(t)
	nettest.StartTCPServer(t, tb.lan1, ip(lan1Addr, 554))
	h, _ := tb.chute(t, "web", 3, Policy{LAN: []LANRule{{Prefix: netip.PrefixFrom(lan1Addr, 32)}}}, Bandwidth{})
	mustReach(t, "before", h, ip(lan1Addr, 554))
	db := "--db=unix:" + filepath.Join(tb.cfg.DataDir, "ovs", "db.sock")
	port := netconf.HostIfFor("web")
	if out, err := exec.Command("ovs-vsctl", db, "--timeout=10", "del-port", DefaultBridge, port).CombinedOutput(); err != nil {
		t.Fatalf("ovs-vsctl del-port: %v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second) // the testbed's repair tick is 1s
	for {
		_, err := reach(t, h, ip(lan1Addr, 554))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("ovs-vsctl", db, "--timeout=10", "list-ports", DefaultBridge).CombinedOutput()
			t.Fatalf("the chute's port deleted by hand: no connectivity after 30s (%v); ports: %s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// macOf is the MAC of eth0 in h.
func macOf(t *testing.T, h *nettest.Host) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := netconf.InNetNS(h.NetNS, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err == nil {
			mac = ifc.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// matrixIPv6 gives the matrix's hosts their IPv6 as the simulated world
// has it (newSimWorld): the LAN hosts and the cloud documentation
// addresses, the gateway one on the WAN and forwarding, the LAN hosts
// taking the chutes' /64s for their own link and the gateway's LAN
// address (lanGW6, the bridge's) for their router, and the cloud a route
// to the chutes' /64s through the gateway (the ISP's route to the
// delegated prefix); the chutes have the gateway as their IPv6 router
// (Attach gives them one with a delegated prefix): what keeps them apart
// is the switch's doing.
func (tb *testbed) matrixIPv6(t *testing.T, hosts map[string]*nettest.Host) {
	t.Helper()
	wanGW6 := netip.MustParseAddr("2001:db8:ffff::1")
	run := func(h *nettest.Host, argv ...string) {
		t.Helper()
		nettest.Exec(t, h, append([]string{"ip", "-6"}, argv...)...)
	}
	for i, h := range []*nettest.Host{tb.lan1, tb.lan2} {
		run(h, "addr", "add", netip.PrefixFrom(lanV6[i], 64).String(), "dev", "eth0", "nodad")
		for _, p := range []netip.Prefix{tb.n.cfg.Subnet6, tb.n.Global6()} {
			run(h, "route", "add", p.String(), "dev", "eth0")
		}
		run(h, "route", "add", "default", "via", lanGW6.Addr().String())
	}
	run(tb.gw, "addr", "add", netip.PrefixFrom(wanGW6, 64).String(), "dev", "wan0", "nodad")
	nettest.Exec(t, tb.gw, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	run(tb.cloud, "addr", "add", netip.PrefixFrom(cloud6, 64).String(), "dev", "eth0", "nodad")
	for _, p := range []netip.Prefix{tb.n.cfg.Subnet6, tb.n.Global6()} {
		run(tb.cloud, "route", "add", p.String(), "via", wanGW6.String())
	}
	// The gateway routes the LAN's IPv6 out of the bridge (its LAN
	// address there, lanGW6, makes the route): what a wan chute sends
	// there is routed, and stopped by the guard alone.
	if out, _ := nettest.Run(tb.gw, "ip", "-6", "route", "show", lanNet6.String()); !strings.Contains(out, "dev "+tb.n.cfg.Bridge) {
		t.Fatalf("the gateway has no route to the LAN's %s on the bridge: %q", lanNet6, out)
	}
	for _, mc := range matrixChutes(nil) {
		if out, _ := nettest.Run(hosts[mc.name], "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via "+tb.n.gateway6.String()) {
			t.Fatalf("chute %s has no IPv6 default route via the gateway: %q", mc.name, out)
		}
	}
}

// matrixAddr is the address of a matrix host name on the testbed, of a
// family (a chute's IPv6: its ULA, or with global its global address).
func (tb *testbed) matrixAddr(name string, six, global bool) netip.Addr {
	if six {
		switch name {
		case "gw":
			return tb.n.gateway6
		case "gwlan":
			return lanGW6.Addr()
		case "lan1", "lan2":
			return lanV6[name[3]-'1']
		case "cloud":
			return cloud6
		}
		tb.n.mu.Lock()
		defer tb.n.mu.Unlock()
		if global {
			return tb.n.AddressGlobal6(tb.n.chutes[name].IP)
		}
		return tb.n.Address6(tb.n.chutes[name].IP)
	}
	switch name {
	case "gw":
		return tb.n.gateway
	case "gwlan":
		return lanGW.Addr()
	case "lan1":
		return lan1Addr
	case "lan2":
		return lan2Addr
	case "cloud":
		return cloudIP
	}
	tb.n.mu.Lock()
	defer tb.n.mu.Unlock()
	return tb.n.chutes[name].IP
}

func (tb *testbed) matrixEndpoint(s string, c reachCase) (string, netip.AddrPort) {
	host, port, _ := strings.Cut(s, ":")
	n, _ := strconv.Atoi(port)
	return host, netip.AddrPortFrom(tb.matrixAddr(host, c.six, c.global), uint16(n))
}

// startMatrixServers listens wherever a matrix case may land (at, or to),
// but for the endpoints in running, so that a refused case is the
// network's doing and not a missing server's.
func (tb *testbed) startMatrixServers(t *testing.T, hosts map[string]*nettest.Host, running map[string]bool) {
	t.Helper()
	started := map[string]bool{}
	for _, c := range slices.Concat(reachCases, reachCases6) {
		at := c.at
		if at == "" {
			at = c.to
		}
		if !strings.Contains(at, ":") || running[at] || c.proto == "ack" {
			continue
		}
		key := fmt.Sprint(at, "/", c.proto, c.six, c.global)
		if started[key] {
			continue
		}
		started[key] = true
		host, addr := tb.matrixEndpoint(at, c)
		switch c.proto {
		case "udp":
			udpEcho(t, hosts[host], addr)
		case "udp3":
			udpBurstEcho(t, hosts[host], addr, 3)
		default:
			nettest.StartTCPServer(t, hosts[host], addr.String())
		}
	}
}

// udpEcho answers every datagram to addr in h with itself.
func udpEcho(t *testing.T, h *nettest.Host, addr netip.AddrPort) {
	t.Helper()
	var pc net.PacketConn
	if err := netconf.InNetNS(h.NetNS, func() (err error) { pc, err = net.ListenPacket("udp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpBurstEcho answers datagrams to addr in h only once n have come
// from one sender, then echoes all n: the flow's later datagrams cross
// the switch before any answer does.
func udpBurstEcho(t *testing.T, h *nettest.Host, addr netip.AddrPort, n int) {
	t.Helper()
	var pc net.PacketConn
	if err := netconf.InNetNS(h.NetNS, func() (err error) { pc, err = net.ListenPacket("udp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		held := map[string][][]byte{}
		buf := make([]byte, 1500)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			key := from.String()
			held[key] = append(held[key], slices.Clone(buf[:k]))
			if len(held[key]) < n {
				continue
			}
			for _, d := range held[key] {
				pc.WriteTo(d, from)
			}
			delete(held, key)
		}
	}()
}

// udpBurstReach sends n datagrams of one flow from h to addr at once and
// waits for all n echoes (a udpBurstEcho answers only after the last).
func udpBurstReach(h *nettest.Host, addr netip.AddrPort, n int) error {
	var c net.Conn
	if err := netconf.InNetNS(h.NetNS, func() (err error) { c, err = net.Dial("udp", addr.String()); return err }); err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		if _, err := fmt.Fprintf(c, "datagram %d", i); err != nil {
			return err
		}
	}
	got := map[string]bool{}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(got) < n {
		k, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("%d of %d datagrams echoed by %s: %v", len(got), n, addr, err)
		}
		got[string(buf[:k])] = true
	}
	return nil
}

// udpReach sends a datagram from h to addr and waits for its echo; it
// tries three times, as ping does.
func udpReach(h *nettest.Host, addr netip.AddrPort) error {
	var c net.Conn
	if err := netconf.InNetNS(h.NetNS, func() (err error) { c, err = net.Dial("udp", addr.String()); return err }); err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 16)
	var err error
	for range 3 {
		if _, err = c.Write([]byte("matrix")); err != nil {
			continue
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var n int
		if n, err = c.Read(buf); err == nil && string(buf[:n]) == "matrix" {
			return nil
		}
	}
	return fmt.Errorf("no echo from %s: %v", addr, err)
}

// matrix runs every case of the reachability matrix with real traffic and
// checks it against the expectation and, case by case, against the
// simulator running the flows this switch was given.
func (tb *testbed) matrix(t *testing.T, hosts map[string]*nettest.Host, lanMACs []net.HardwareAddr) {
	tb.n.mu.Lock()
	var chutes []*attached
	for _, c := range tb.n.chutes {
		a := *c
		chutes = append(chutes, &a)
	}
	slices.SortFunc(chutes, func(a, b *attached) int { return strings.Compare(a.Name, b.Name) })
	w := newSimWorld(tb.n.topo, chutes, lanMACs)
	installed := tb.n.last
	// The network keeps each flow's identity (its cookie hashes the
	// match), the controller the flows encoded: handed the simulator's
	// whole flows (matches, instructions) and meters, it must find them
	// the same as what it holds, and change nothing.
	changed := tb.n.ctl.SetDesired(slices.Clone(w.d.Flows), w.d.Meters)
	tb.n.mu.Unlock()
	if changed {
		t.Fatal("the simulator's flows (matches, instructions, meters) are not those the controller holds")
	}
	want := *w.d
	want.Flows = slices.Clone(w.d.Flows)
	want.strip()
	if !reflect.DeepEqual(&want, installed) {
		t.Fatal("the simulator's flows are not those the switch was given")
	}
	for _, c := range slices.Concat(reachCases, reachCases6) {
		t.Run(c.name, func(t *testing.T) {
			simOK, notes, err := w.run(c)
			if err != nil {
				t.Fatalf("simulator: %v", err)
			}
			if c.proto == "ack" {
				ovsOK, err := tb.forged(t, w, hosts, c)
				if err != nil {
					t.Fatal(err)
				}
				if ovsOK != c.want || simOK != ovsOK {
					t.Errorf("forged answer %s -> %s: Open vSwitch delivered it: %v, the simulator: %v (%q), want %v", c.from, c.to, ovsOK, simOK, notes, c.want)
				}
				return
			}
			from := hosts[c.from]
			_, to := tb.matrixEndpoint(c.to, c)
			var ovsErr error
			switch c.proto {
			case "ping":
				ovsErr = ping(from, to.Addr())
			case "udp":
				ovsErr = udpReach(from, to)
			case "udp3":
				ovsErr = udpBurstReach(from, to, 3)
			default:
				_, ovsErr = nettest.Dial(t, from, to.String(), 3*time.Second)
			}
			ovsOK := ovsErr == nil
			if ovsOK != c.want {
				t.Errorf("Open vSwitch: %s -> %s (%s): reached %v, want %v (%v)", c.from, c.to, c.proto, ovsOK, c.want, ovsErr)
			}
			if simOK != ovsOK {
				t.Errorf("the simulator and Open vSwitch disagree on %s -> %s (%s): simulator %v (%q), Open vSwitch %v (%v)",
					c.from, c.to, c.proto, simOK, notes, ovsOK, ovsErr)
			}
		})
	}
}

// frame encodes an IPv4 TCP packet of the simulator as it goes on the
// wire, checksums included.
func frame(p *ofsim.Packet) []byte {
	b := make([]byte, 14+20+20)
	copy(b[0:6], p.EthDst)
	copy(b[6:12], p.EthSrc)
	binary.BigEndian.PutUint16(b[12:], ofsim.EthIPv4)
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, ofsim.ProtoTCP
	binary.BigEndian.PutUint16(ip[2:], 40)
	src, dst := p.Src.As4(), p.Dst.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[0:], p.SrcPort)
	binary.BigEndian.PutUint16(tcp[2:], p.DstPort)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 2000)
	tcp[12], tcp[13] = 5<<4, byte(p.TCPFlags)
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	// Each 16-bit word of the pseudo-header parenthesised: | and + bind
	// alike, so without them a low byte sharing bits with the next word's
	// sum made a checksum the receiver rejects.
	pseudo := (uint32(src[0])<<8 | uint32(src[1])) + (uint32(src[2])<<8 | uint32(src[3])) +
		(uint32(dst[0])<<8 | uint32(dst[1])) + (uint32(dst[2])<<8 | uint32(dst[3])) + ofsim.ProtoTCP + 20
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudo))
	return b
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// sendFrame puts a raw frame on eth0 in h.
func sendFrame(h *nettest.Host, b []byte) error {
	return netconf.InNetNS(h.NetNS, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, b, 0, &unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6})
	})
}

// counts returns the switch's packet count of every flow, by cookie.
func (tb *testbed) counts(t *testing.T) map[uint64]uint64 {
	t.Helper()
	rules, err := tb.n.Flows(testCtx(t, 20*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]uint64{}
	for _, r := range rules {
		m[r.Cookie] += r.Packets
	}
	return m
}

// forged sends the simulator's forged answer (a lone ACK of no
// connection) as a raw frame and reports whether the switch delivered it
// to the chute, and whether the flow the simulator says decided it
// counted it.
func (tb *testbed) forged(t *testing.T, w *simWorld, hosts map[string]*nettest.Host, c reachCase) (delivered bool, err error) {
	p, tr := w.request, w.requestTrace
	if p == nil {
		return false, errors.New("the simulator sent nothing")
	}
	toHost, _ := tb.matrixEndpoint(c.to, c)
	// The flow delivering to the target, if it is a chute; for another
	// host, only the deciding drop flow's count tells.
	var deliver uint64
	tb.n.mu.Lock()
	if a, ok := tb.n.chutes[toHost]; ok {
		id := a.id(tb.n.topo.Subnet)
		// Derived again: the network keeps no matches (the controller
		// holds them encoded).
		d := derive(tb.n.topo, slices.Collect(maps.Values(tb.n.chutes)))
		for _, f := range d.Flows {
			if uint32(f.Cookie>>32) == id && d.RX[f.Cookie] && f.Table == tableOutput &&
				slices.ContainsFunc(f.Match.Fields, func(o ofp.OXM) bool { return o.ID == ofp.FieldIPv4Dst }) {
				deliver = f.Cookie
			}
		}
	}
	tb.n.mu.Unlock()
	decided := tr.Decided().Cookie
	before := tb.counts(t)
	if err := sendFrame(hosts[c.from], frame(p)); err != nil {
		t.Fatal(err)
	}
	// Flow statistics reach the controller within a second or so.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		after := tb.counts(t)
		if deliver != 0 && after[deliver] > before[deliver] {
			return true, nil
		}
		if after[decided] > before[decided] {
			return false, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("the switch counted the frame on neither %q nor the delivery to %s", tr.Note(), toHost)
		}
	}
}

// The gateway's MAC in the flows is the one its bridge device has, for
// good: Open vSwitch gives a bridge's own port the lowest universal MAC
// among its ports unless told one, so a LAN port with a real NIC's MAC,
// added after the gateway's MAC was read, changed it under the flows (and
// under load a bridge's first MAC could be read before Open vSwitch set
// its own). Traffic from the chutes to the gateway then went to a MAC the
// gateway's device drops, and their answers to its neighbour
// solicitations (to its real MAC) were dropped by the switch: its first
// connection to a chute's ULA went unanswered. So the gateway connects to
// a chute at once, over IPv4 and IPv6, with a LAN port holding a
// universal MAC.
func TestGatewayMACStaysTheBridges(t *testing.T) {
	universal := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01} // RFC 7042's documentation range
	tb := newTestbed(t, func(c *Config) {
		if err := netconf.InNetNS(c.NetNS, func() error {
			l, err := netlink.LinkByName("lan1")
			if err != nil {
				return err
			}
			return netlink.LinkSetHardwareAddr(l, universal)
		}); err != nil {
			t.Fatal(err)
		}
	})
	h, c := tb.chute(t, "web", 3, Policy{}, Bandwidth{})
	nettest.StartTCPServer(t, h, ":8080")
	kernelMAC := func() net.HardwareAddr {
		var mac net.HardwareAddr
		if err := netconf.InNetNS(tb.gw.NetNS, func() error {
			l, err := netlink.LinkByName(tb.n.cfg.Bridge)
			if err == nil {
				mac = l.Attrs().HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return mac
	}
	for _, a := range []netip.Addr{c.IP, tb.n.Address6(c.IP)} {
		if _, err := reach(t, tb.gw, ip(a, 8080)); err != nil {
			t.Errorf("the gateway's first connection to the chute at %s: %v", a, err)
		}
	}
	tb.n.mu.Lock()
	flowsMAC := tb.n.topo.GatewayMAC
	tb.n.mu.Unlock()
	if dev := kernelMAC(); !slices.Equal(flowsMAC, dev) {
		t.Errorf("the flows take the gateway's MAC for %s, its bridge device has %s", flowsMAC, dev)
	}
}
