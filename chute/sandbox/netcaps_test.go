package sandbox_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"paradrop/chute/sandbox"
	"paradrop/chute/sandbox/sandboxtest"
	"paradrop/netconf/nettest"
)

// probeCommand makes the test binary, copied into a chute's rootfs as
// /probe, a tool the chute runs: `/probe __probe rawping ADDR` opens a
// raw ICMP socket and pings ADDR through it.
const probeCommand = "__probe"

func probe(args []string) int {
	if len(args) != 2 || args[0] != "rawping" {
		fmt.Println("usage: rawping ADDR")
		return 2
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	if err != nil {
		fmt.Println("raw socket:", err)
		return 1
	}
	unix.Close(fd)
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	dst := &net.IPAddr{IP: net.ParseIP(args[1])}
	req, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x7d, Seq: 1, Data: []byte("paradrop")}}).Marshal(nil)
	if _, err := c.WriteTo(req, dst); err != nil {
		fmt.Println("send:", err)
		return 1
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			fmt.Println("no reply:", err)
			return 1
		}
		if m, err := icmp.ParseMessage(1, buf[:n]); err == nil && m.Type == ipv4.ICMPTypeEchoReply && peer.String() == args[1] {
			fmt.Println("raw echo reply from", peer)
			return 0
		}
	}
}

// installProbe puts the (static) test binary into the rootfs as /probe.
func installProbe(t *testing.T, rootfs string) {
	t.Helper()
	copyExeFrom(t, sandboxtest.StaticExecutable(t), filepath.Join(rootfs, "probe"))
}

// chuteNet is a chute's network namespace made as the daemon makes it
// (pinned, eth0 with an address and a default route) and a gateway
// namespace at the other end of eth0's veth, all in TEST-NET-1.
type chuteNet struct {
	chute, gw *nettest.Host
}

var (
	chuteAddr = netip.MustParsePrefix("198.51.100.2/24")
	gwAddr    = netip.MustParsePrefix("198.51.100.1/24")
)

func newChuteNet(t testing.TB) chuteNet {
	t.Helper()
	n := chuteNet{chute: nettest.NewHost(t), gw: nettest.NewHost(t)}
	nettest.Veth(t, nettest.End{Host: n.gw, If: "gw0", Addr: gwAddr}, nettest.End{Host: n.chute, If: "eth0", Addr: chuteAddr})
	n.chute.Route(t, netip.Prefix{}, gwAddr.Addr())
	return n
}

// link is the named link of the namespace at path, through a handle there.
func link(t *testing.T, path, name string) (netlink.Link, []netlink.Addr) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, path, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	return l, addrs
}

// TestNetCapabilities: NET_RAW and NET_ADMIN act on the chute's network,
// and only there: with NET_RAW it pings the gateway through a raw socket,
// with NET_ADMIN it changes its eth0, which the namespace the daemon
// pinned shows and the gateway's side does not; without them it can do
// neither. The chute's /sys shows its own links either way.
func TestNetCapabilities(t *testing.T) {
	const script = `
		ls /sys/class/net | tr '\n' ' '; echo
		/probe ` + probeCommand + ` rawping 198.51.100.1
		ip link set eth0 mtu 1400 2>&1 && echo mtu set
		ip addr add 198.51.100.99/24 dev eth0 2>&1 && echo address added
		ip route | grep default`
	for _, tc := range []struct {
		caps []string
		want []string
	}{
		{nil, []string{"eth0 lo ", "raw socket: operation not permitted", "ip: SIOCSIFMTU: Operation not permitted", "ip: RTNETLINK answers: Operation not permitted", "default via 198.51.100.1 dev eth0 "}},
		{[]string{"NET_RAW"}, []string{"eth0 lo ", "raw echo reply from 198.51.100.1", "ip: SIOCSIFMTU: Operation not permitted", "ip: RTNETLINK answers: Operation not permitted", "default via 198.51.100.1 dev eth0 "}},
		{[]string{"NET_ADMIN"}, []string{"eth0 lo ", "raw socket: operation not permitted", "mtu set", "address added", "default via 198.51.100.1 dev eth0 "}},
	} {
		t.Run(fmt.Sprint(tc.caps), func(t *testing.T) {
			n := newChuteNet(t)
			s := newSpec(t, "netcaps", script)
			installProbe(t, s.Rootfs)
			s.NetNS = n.chute.NetNS
			s.Caps = tc.caps
			// Twice: the second run finds the namespace the first one's
			// chute owned, as a restarted chute does.
			for run := range 2 {
				os.Remove(filepath.Join(s.LogDir, "current.log"))
				_, lines := runScript(t, s)
				var got []string
				for _, l := range lines {
					got = append(got, strings.TrimPrefix(l, "stdout "))
				}
				want := tc.want
				if run == 1 && slices.Contains(tc.caps, "NET_ADMIN") {
					// The address is still there; the MTU set again is no change.
					want = slices.Replace(slices.Clone(want), 3, 4, "ip: RTNETLINK answers: File exists")
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("run %d: chute printed\n%s\nwant\n%s", run, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			eth0, addrs := link(t, n.chute.NetNS, "eth0")
			gw0, _ := link(t, n.gw.NetNS, "gw0")
			wantMTU, wantAddrs := 1500, []string{chuteAddr.String()}
			if slices.Contains(tc.caps, "NET_ADMIN") {
				wantMTU, wantAddrs = 1400, []string{chuteAddr.String(), "198.51.100.99/24"}
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.IPNet.String())
			}
			if eth0.Attrs().MTU != wantMTU || !slices.Equal(got, wantAddrs) {
				t.Errorf("eth0 in the pinned namespace: mtu %d, addresses %v; want %d, %v", eth0.Attrs().MTU, got, wantMTU, wantAddrs)
			}
			if gw0.Attrs().MTU != 1500 {
				t.Errorf("the gateway's end changed: mtu %d", gw0.Attrs().MTU)
			}
		})
	}
}

// A network capability without a network namespace from the daemon: the
// chute owns a namespace with only lo, up.
func TestNetCapabilityNoNetwork(t *testing.T) {
	s := newSpec(t, "netcapslo", `ls /sys/class/net; ip link set lo mtu 1280 && cat /sys/class/net/lo/mtu; cat /sys/class/net/lo/operstate`)
	s.Caps = []string{"NET_ADMIN"}
	_, lines := runScript(t, s)
	if got, want := strings.Join(lines, "|"), "stdout lo|stdout 1280|stdout unknown"; got != want {
		t.Errorf("chute printed %q, want %q", got, want)
	}
}

// BenchmarkStartNetNS: a chute's start and run of true, in the network
// namespace the daemon made and in one of its own (NET_RAW), into which
// the shim moves eth0 at each start.
func BenchmarkStartNetNS(b *testing.B) {
	for _, caps := range [][]string{nil, {"NET_RAW"}} {
		b.Run(fmt.Sprint(caps), func(b *testing.B) {
			n := newChuteNet(b)
			s := newSpec(b, "bench", "true")
			s.NetNS, s.Caps = n.chute.NetNS, caps
			for b.Loop() {
				c, err := sandbox.Start(b.Context(), s)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Wait(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCleanupAfterJoinedStarts: a chute joining the daemon's namespace
// has its /sys links staged in its state directory, which its next start
// reuses and Cleanup removes with the rest.
func TestCleanupAfterJoinedStarts(t *testing.T) {
	s := newSpec(t, "joined", `ls /sys/class/net`)
	s.NetNS = newChuteNet(t).chute.NetNS
	for range 2 {
		if st := wait(t, start(t, s)); st.Code != 0 {
			t.Fatalf("exit %+v", st)
		}
	}
	if got := strings.Join(logLines(t, s.LogDir), "|"); got != "stdout eth0|stdout lo|stdout eth0|stdout lo" {
		t.Errorf("chute saw links %q", got)
	}
	if err := sandbox.Cleanup(s.StateDir); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if _, err := os.Stat(s.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir after Cleanup: %v", err)
	}
}
