package chute

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

const netCapsProbe = `#!/bin/sh
arping -c 1 -w 3 -I eth0 10.131.0.1 > /data/arping 2>&1; echo "exit $?" >> /data/arping
ip link set eth0 mtu 1400 && ip addr add 10.131.0.99/24 dev eth0; echo "exit $?" > /data/admin
ping -c 1 -W 3 10.131.0.1 > /data/ping 2>&1; echo "exit $?" >> /data/ping
ping -c 1 -W 3 -I 10.131.0.99 10.131.0.1 > /data/spoof 2>&1; echo "exit $?" >> /data/spoof
if [ -e /data/macspoof ]; then
	ip link set eth0 address 02:00:00:00:7d:99
	ping -c 1 -W 3 -s 99 10.131.0.1 > /data/macspoofed 2>&1; echo "exit $?" >> /data/macspoofed
fi
echo done > /data/done
exec sleep 1000
`

// echoSources listens, in the namespace at path, for ICMP echo requests
// and returns a function that says, after waiting up to d, from which
// addresses they came, each with its data size ("10.131.0.11/56").
func echoSources(t *testing.T, path string) func(d time.Duration) map[string]bool {
	t.Helper()
	var c *icmp.PacketConn
	err := netconf.InNetNS(path, func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(d time.Duration) map[string]bool {
		seen := map[string]bool{}
		c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 1500)
		for {
			n, peer, err := c.ReadFrom(buf)
			if err != nil {
				return seen
			}
			if m, err := icmp.ParseMessage(1, buf[:n]); err == nil && m.Type == ipv4.ICMPTypeEcho {
				seen[fmt.Sprintf("%s/%d", peer, len(m.Body.(*icmp.Echo).Data))] = true
			}
		}
	}
}

// TestNetCapsThroughTheSwitch: a chute allowed NET_RAW and NET_ADMIN, on
// the gateway's real switch, uses them on its own network only: it ARPs
// the gateway through a packet socket, changes its eth0's MTU and adds an
// address, which the gateway's end of its link does not follow; a ping
// from its own address reaches the gateway, one from the address it added
// is dropped by the switch before the gateway sees it. After a restart
// its network is whole again.
func TestNetCapsThroughTheSwitch(t *testing.T) {
	nettest.Require(t, "busybox")
	gw, lan := nettest.NewHost(t), nettest.NewHost(t)
	nettest.Veth(t, nettest.End{Host: lan, If: "eth0", Addr: testLANHost}, nettest.End{Host: gw, If: "lan0"})
	ng := newNetGatewayWith(t, t.TempDir(), gw, lan, func(c *Config) {
		c.Allow = Privileges{Capabilities: []string{"NET_RAW", "NET_ADMIN"}}
	})
	defer func() { ng.removeAll(); ng.net.Close(context.Background()) }()
	echoes := echoSources(t, gw.NetNS)
	ng.install(pkg(t, `
name: netadmin
version: 1.0.0
command: ["/probe.sh"]
capabilities: [NET_RAW, NET_ADMIN]
`, map[string]string{"probe.sh": netCapsProbe}))
	eventually(t, 20*time.Second, "the probe", func() bool { return readData(ng.gateway, "netadmin", "done") == "done" })
	info, err := ng.m.Get("netadmin")
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"arping": "Unicast reply from 10.131.0.1", // a packet socket: NET_RAW
		"admin":  "exit 0",                        // ip link set, ip addr add: NET_ADMIN
		"ping":   "exit 0",
		"spoof":  "exit 1",
	} {
		if got := readData(ng.gateway, "netadmin", file); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q in it", file, got, want)
		}
	}
	seen := echoes(2 * time.Second)
	if !seen[info.IP+"/56"] || len(seen) != 1 {
		t.Errorf("the gateway saw echo requests from %v, want from the chute's %s only", seen, info.IP)
	}
	host := nettest.Exec(t, gw, "ip", "-o", "link", "show", netconf.HostIfFor("netadmin"))
	if !strings.Contains(host, "mtu 1500") {
		t.Errorf("the gateway's end of the chute's link followed its MTU: %s", host)
	}

	// A restart moves eth0, as the chute left it, into the next
	// instance's namespace; this time the chute also changes its MAC.
	os.Remove(filepath.Join(ng.m.paths.data("netadmin"), "done"))
	if err := os.WriteFile(filepath.Join(ng.m.paths.data("netadmin"), "macspoof"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ng.mustDo(ng.m.Restart("netadmin", ""))
	eventually(t, 20*time.Second, "the probe after a restart", func() bool { return readData(ng.gateway, "netadmin", "done") == "done" })
	for file, want := range map[string]string{"arping": "Unicast reply from 10.131.0.1", "ping": "exit 0", "spoof": "exit 1", "macspoofed": "exit 1"} {
		if got := readData(ng.gateway, "netadmin", file); !strings.Contains(got, want) {
			t.Errorf("after the restart, %s: %q, want %q in it", file, got, want)
		}
	}
	if seen := echoes(2 * time.Second); !seen[info.IP+"/56"] || len(seen) != 1 {
		t.Errorf("after the restart, the gateway saw echo requests from %v, want the one from %s with its own MAC only", seen, info.IP)
	}
}
