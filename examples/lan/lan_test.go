package lan

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// A device reaches the gateway's LAN address over its link, the gateway
// reaches it back, and Close leaves neither link nor namespace behind.
func TestDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	gw := nettest.NewHost(t)
	gwAddr := netip.MustParsePrefix("192.0.2.1/24")
	dir := t.TempDir()
	l := New(dir, gw.NetNS, gwAddr)
	t.Cleanup(func() { l.Close() })
	if _, err := l.Add("bad", "lanbad", netip.MustParseAddr("198.51.100.9")); err == nil {
		t.Error("a device off the gateway's LAN was added")
	}
	if _, err := l.Add("gw", "langw", gwAddr.Addr()); err == nil {
		t.Error("a device at the gateway's own address was added")
	}
	// A LAN over a network the gateway already has is refused: its
	// devices would take the addresses of real hosts.
	nettest.Veth(t, nettest.End{Host: gw, If: "eth0", Addr: netip.MustParsePrefix("203.0.113.2/24")}, nettest.End{Host: nettest.NewHost(t), If: "eth0"})
	gw.Route(t, netip.Prefix{}, netip.MustParseAddr("203.0.113.1"))
	taken := New(t.TempDir(), gw.NetNS, netip.MustParsePrefix("203.0.113.1/25"))
	t.Cleanup(func() { taken.Close() })
	if _, err := taken.Add("x", "lanx", netip.MustParseAddr("203.0.113.50")); err == nil || !strings.Contains(err.Error(), "overlaps 203.0.113.0/24 on eth0") {
		t.Errorf("a LAN over the gateway's own network: %v", err)
	}
	d, err := l.Add("cam", "lan0", netip.MustParseAddr("192.0.2.50"))
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's end: give it the LAN address, as the chute network
	// does to its bridge.
	if err := netconf.InNetNS(gw.NetNS, func() error { return netconf.SetAddr("lan0", gwAddr) }); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := netconf.InNetNS(gw.NetNS, func() (err error) { ln, err = net.Listen("tcp", "192.0.2.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	conn, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("device to the gateway: %v", err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	seen, _ := io.ReadAll(conn)
	conn.Close()
	if host, _, _ := net.SplitHostPort(string(seen)); host != "192.0.2.50" {
		t.Errorf("the gateway saw the device as %q", seen)
	}
	dev, err := d.Listen("tcp", "192.0.2.50:80")
	if err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cam")); !os.IsNotExist(err) {
		t.Errorf("the device's namespace is left: %v", err)
	}
	netconf.InNetNS(gw.NetNS, func() error {
		if _, err := netlink.LinkByName("lan0"); err == nil {
			t.Error("the device's link is left at the gateway")
		}
		return nil
	})
}
