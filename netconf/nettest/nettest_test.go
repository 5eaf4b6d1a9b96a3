package nettest_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"paradrop/netconf/nettest"
)

// TestLAN wires a and b through a Linux bridge in sw, and c straight to b on
// another subnet with a default route through b, then checks ping and TCP
// (including the client address the server sees) between them.
func TestLAN(t *testing.T) {
	nettest.Require(t, "busybox")
	sw, a, b, c := nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t)
	nettest.Bridge(t, sw, "br0")
	nettest.Veth(t,
		nettest.End{Host: sw, If: "a", Master: "br0"},
		nettest.End{Host: a, If: "eth0", Addr: netip.MustParsePrefix("192.0.2.10/24")})
	nettest.Veth(t,
		nettest.End{Host: sw, If: "b", Master: "br0"},
		nettest.End{Host: b, If: "eth0", Addr: netip.MustParsePrefix("192.0.2.20/24")})
	nettest.Veth(t,
		nettest.End{Host: b, If: "c", Addr: netip.MustParsePrefix("198.51.100.1/24")},
		nettest.End{Host: c, If: "eth0", Addr: netip.MustParsePrefix("198.51.100.2/24")})
	c.Route(t, netip.Prefix{}, netip.MustParseAddr("198.51.100.1"))

	cases := []struct {
		name     string
		from, to *nettest.Host
		addr     string // of to
		wantPeer string // client address the server sees; "" if unreachable
	}{
		{"across the bridge", a, b, "192.0.2.20", "192.0.2.10"},
		{"direct veth", b, c, "198.51.100.2", "198.51.100.1"},
		{"through default route", c, b, "192.0.2.20", "198.51.100.2"},
		{"no route back", a, c, "198.51.100.2", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := nettest.Run(tc.from, "busybox", "ping", "-c", "1", "-W", "1", tc.addr)
			if (err == nil) != (tc.wantPeer != "") {
				t.Errorf("ping %s: %v\n%s", tc.addr, err, out)
			}
			srv := nettest.StartTCPServer(t, tc.to, net.JoinHostPort(tc.addr, "0"))
			peer, err := nettest.PeerAddr(t, tc.from, srv.String(), 2*time.Second)
			host, _, _ := strings.Cut(peer, ":")
			if tc.wantPeer == "" {
				if err == nil {
					t.Errorf("TCP to %s worked, want failure", srv)
				}
				return
			}
			if err != nil || host != tc.wantPeer {
				t.Errorf("TCP to %s: server saw %q (err %v), want %s", srv, peer, err, tc.wantPeer)
			}
		})
	}

	if _, err := nettest.Run(a, "busybox", "false"); err == nil {
		t.Error("Run of a failing command returned no error")
	}

	// A background program started inside b is reachable from a.
	nettest.Start(t, b, "busybox", "nc", "-l", "-p", "7000", "-e", "busybox", "echo", "hello")
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn, err := nettest.Dial(t, a, "192.0.2.20:7000", time.Second)
		if err != nil {
			continue // not listening yet
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		n, _ := conn.Read(buf)
		got = string(buf[:n])
		break
	}
	if got != "hello\n" {
		t.Errorf("from nc started in b: %q, want \"hello\\n\"", got)
	}
}
