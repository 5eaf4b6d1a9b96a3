package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"paradrop/examples"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// webCounter answers each request with the count of requests so far, kept
// in /data/count.
const webCounter = `#!/bin/sh
n=$(( $(cat /data/count 2>/dev/null || echo 0) + 1 ))
echo $n > /data/count
printf 'Content-Type: text/plain\r\n\r\ncount %d\n' $n
`

// wanGateway is a real daemon in a namespace of its own: its Open vSwitch
// and bridge there, its LAN port to a client namespace, its API over HTTPS
// at its address on the fake WAN.
type wanGateway struct {
	*lanDaemon
	lan    netip.Prefix // the gateway's LAN address
	client *nettest.Host
	bridge string
}

// TestMigrateOverTheWAN: two gateways, each a real serve in its own
// namespace with its own Open vSwitch, linked by a fake WAN namespace. A
// chute exposing its web server, redirecting a cloud address to it and
// metered on egress moves from A to B over the WAN, the target's
// certificate pinned. On B it has its exposed port, its redirect and its
// manifest's meter (not the live policy A's operator set), B's LAN client reaches it both ways with the count going on from
// A's (/data intact), and on A nothing of it is left: no flows, no answer.
func TestMigrateOverTheWAN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	nettest.Require(t, "busybox", "ovs-ofctl")
	bin := buildBinary(t)
	wan := nettest.NewHost(t)
	nettest.Bridge(t, wan, "wan")
	const cloud = "198.51.100.200" // the developer's cloud address, redirected
	gw := func(i int, wanAddr, lan, client string) *wanGateway {
		t.Helper()
		h, c := nettest.NewHost(t), nettest.NewHost(t)
		nettest.Veth(t, nettest.End{Host: h, If: "wan0", Addr: netip.MustParsePrefix(wanAddr + "/24")}, nettest.End{Host: wan, If: fmt.Sprintf("gw%d", i), Master: "wan"})
		g := &wanGateway{lan: netip.MustParsePrefix(lan), client: c, bridge: fmt.Sprintf("pdwan%d", i)}
		nettest.Veth(t, nettest.End{Host: c, If: "eth0", Addr: netip.MustParsePrefix(client)}, nettest.End{Host: h, If: "lan0"})
		c.Route(t, netip.Prefix{}, g.lan.Addr())
		top := t.TempDir()
		parent := fmt.Sprintf("/paradrop-wan%d-%d", i, os.Getpid())
		t.Cleanup(func() { dropCgroupParent(t, parent) })
		g.lanDaemon = &lanDaemon{t: t, bin: bin, host: h, data: filepath.Join(top, "data"), log: filepath.Join(top, "daemon.log"), https: wanAddr + ":8443"}
		g.start("--network=true", "--cgroup-parent", parent, "--ovsdb", "unix:"+filepath.Join(top, "none.sock"),
			"--bridge", g.bridge, "--controller", "127.0.0.1:6655", "--lan", "lan0", "--lan-addr", lan, "--dns", "off")
		t.Cleanup(func() { g.cli(top, "chute", "remove", "web", "--yes", "--server", "http://"+tlsLoopPort) })
		return g
	}
	a := gw(0, "198.51.100.1", "203.0.113.1/26", "203.0.113.10/26")
	b := gw(1, "198.51.100.2", "203.0.113.65/26", "203.0.113.70/26")
	home := t.TempDir()
	cli := func(g *wanGateway, args ...string) string {
		t.Helper()
		out, errs, code := g.cli(home, append(args, "--server", "http://"+tlsLoopPort)...)
		if code != 0 {
			b, _ := os.ReadFile(g.log)
			t.Fatalf("%v: exit %d %s%s\ndaemon log:\n%s", args, code, out, errs, b)
		}
		return out
	}
	// count asks g's client for the count at host:port; -1 is no answer.
	count := func(g *wanGateway, addr string) int {
		c, err := nettest.Dial(t, g.client, addr, 2*time.Second)
		if err != nil {
			return -1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET /cgi-bin/count.sh HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
		body, _ := io.ReadAll(c)
		_, n, ok := strings.Cut(string(body), "count ")
		if !ok {
			return -1
		}
		k, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			return -1
		}
		return k
	}
	exposed := func(g *wanGateway) string { return netip.AddrPortFrom(g.lan.Addr(), 8001).String() }
	const redirected = cloud + ":80"
	dataOf := func(g *wanGateway) string { return filepath.Join(g.data, "chutes", "web", "data") }
	sum := func(g *wanGateway) string {
		b, err := os.ReadFile(filepath.Join(dataOf(g), "blob"))
		if err != nil || len(b) != 1<<20 {
			t.Fatalf("blob on %s: %d bytes, %v", g.https, len(b), err)
		}
		return fmt.Sprintf("%x", sha256.Sum256(b))
	}
	ofctl := func(g *wanGateway, what string) string {
		out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", what, "unix:"+filepath.Join(g.data, "ovs", g.bridge+".mgmt")).CombinedOutput()
		if err != nil {
			t.Fatalf("ovs-ofctl %s on %s: %v\n%s", what, g.bridge, err, out)
		}
		return string(out)
	}

	pkg, err := examples.Package(`name: web
version: 1.0.0
command: [/bin/sh, -c, "[ -f /data/blob ] || dd if=/dev/urandom of=/data/blob bs=65536 count=16 2>/dev/null; exec httpd -f -p 80 -h /www"]
stop_grace: 1s
resources: {bandwidth: {egress: 5Mbit}}
net:
  expose: [{port: 80, gateway_port: 8001}]
  redirect: [{to: "`+redirected+`", port: 80}]
`, map[string]string{"www/cgi-bin/count.sh": webCounter})
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(home, "web.tar.gz")
	os.WriteFile(pkgFile, pkg, 0o644)
	cli(a, "chute", "install", pkgFile)

	// On A, its LAN client counts at the exposed port and the redirect.
	// answer is the first count g's client gets at addr within d, its
	// server being up; failed attempts count nothing.
	answer := func(g *wanGateway, addr string, d time.Duration) int {
		t.Helper()
		for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
			if n := count(g, addr); n != -1 {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's LAN client gets no count at %s", g.https, addr)
			}
		}
	}
	n := answer(a, exposed(a), 20*time.Second)
	if got := count(a, redirected); got != n+1 {
		t.Fatalf("A's LAN client at the redirected %s: count %d, want %d", redirected, got, n+1)
	}
	n++
	if m := ofctl(a, "dump-meters"); !strings.Contains(m, "rate=5000 ") {
		t.Errorf("no 5000 kbps meter on A's bridge:\n%s", m)
	}
	port := netconf.HostIfFor("web")
	if p := ofctl(a, "dump-ports-desc"); !strings.Contains(p, port) {
		t.Errorf("A's bridge has no port %s:\n%s", port, p)
	}
	if f := ofctl(a, "dump-flows"); !strings.Contains(f, "tp_dst=8001") || !strings.Contains(f, cloud) {
		t.Errorf("A's bridge has no flows for the exposed port and the redirect:\n%s", f)
	}
	blob := sum(a)
	// A's operator limits it further, live: that is A's policy, which
	// does not move with it.
	cli(a, "chute", "resources", "web", "--egress", "2Mbit")
	if m := ofctl(a, "dump-meters"); !strings.Contains(m, "rate=2000 ") {
		t.Errorf("no 2000 kbps meter on A's bridge after the live policy:\n%s", m)
	}

	// The move, over the WAN, B's certificate pinned.
	out := cli(a, "chute", "migrate", "web", "--to", "https://"+b.https, "--to-token", b.token(), "--to-fingerprint", b.fp)
	if !strings.Contains(out, "running on https://"+b.https) {
		t.Fatalf("migrate: %s", out)
	}
	t.Logf("paradrop chute migrate over the WAN, at count %d:\n%s", n, out)
	if in := cli(b, "chute", "info", "web"); !strings.Contains(in, `"state": "running"`) {
		t.Errorf("on B: %s", in)
	}
	if _, errs, code := a.cli(home, "chute", "info", "web", "--server", "http://"+tlsLoopPort); code != 1 || !strings.Contains(errs, "no such chute") {
		t.Errorf("A still has the chute: %d %s", code, errs)
	}
	if got := sum(b); got != blob {
		t.Errorf("B's /data/blob is %s, A's was %s", got, blob)
	}

	// B's LAN client counts on from A's count, at both ways in (the first
	// request may find the web server still binding: the chute runs, it
	// may not listen yet).
	if got := answer(b, exposed(b), 5*time.Second); got != n+1 {
		t.Errorf("B's LAN client at %s: count %d, want %d", exposed(b), got, n+1)
	}
	if got := count(b, redirected); got != n+2 {
		t.Errorf("B's LAN client at the redirected %s: count %d, want %d", redirected, got, n+2)
	}
	if m := ofctl(b, "dump-meters"); !strings.Contains(m, "rate=5000 ") || strings.Contains(m, "rate=2000 ") {
		t.Errorf("B's bridge after the move has not the manifest's 5000 kbps meter alone:\n%s", m)
	}
	if f := ofctl(b, "dump-flows"); !strings.Contains(f, "tp_dst=8001") || !strings.Contains(f, cloud) {
		t.Errorf("B's bridge has no flows for the exposed port and the redirect:\n%s", f)
	}
	if p := ofctl(b, "dump-ports-desc"); !strings.Contains(p, port) {
		t.Errorf("B's bridge has no port %s:\n%s", port, p)
	}

	// Nothing of it is left on A: no port, no flows for its ways in, no
	// meter, no answer to A's LAN client.
	if p := ofctl(a, "dump-ports-desc"); strings.Contains(p, port) {
		t.Errorf("A's bridge keeps the chute's port %s:\n%s", port, p)
	}
	if f := ofctl(a, "dump-flows"); strings.Contains(f, "tp_dst=8001") || strings.Contains(f, cloud) {
		t.Errorf("A's bridge keeps flows of the chute gone:\n%s", f)
	}
	if m := ofctl(a, "dump-meters"); strings.Contains(m, "rate=2000 ") || strings.Contains(m, "rate=5000 ") {
		t.Errorf("A's bridge keeps the chute's meter:\n%s", m)
	}
	for _, addr := range []string{exposed(a), redirected} {
		if got := count(a, addr); got != -1 {
			t.Errorf("A's LAN client at %s still gets count %d", addr, got)
		}
	}
}
