package sdn

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"paradrop/netconf/nettest"
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
