package netconf_test

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// TestMasquerade builds, entirely in namespaces it owns,
//
//	chute (10.131.0.11) --veth-- router (10.131.0.1 | 203.0.113.1 wan0) --veth-- wan (203.0.113.2)
//
// The WAN host has no route back to the chute subnet, so a chute's TCP
// connection to it completes only if the router masquerades it; the server
// reports the source address it saw.
func TestMasquerade(t *testing.T) {
	nettest.Require(t, "nft")
	const table = "pdtest_masq"
	subnet := netip.MustParsePrefix("10.131.0.0/24")
	router, chute, wan := nettest.NewHost(t), nettest.NewHost(t), nettest.NewHost(t)

	l := netconf.Link{
		HostIf:  "pd-chute",
		NetNS:   chute.NetNS,
		Addr:    netip.MustParsePrefix("10.131.0.11/24"),
		Gateway: netip.MustParseAddr("10.131.0.1"),
	}
	inNS(t, router, func() error {
		if err := netconf.EnsureLink(l); err != nil {
			return err
		}
		return netconf.SetAddr(l.HostIf, netip.MustParsePrefix("10.131.0.1/24"))
	})
	nettest.Veth(t,
		nettest.End{Host: router, If: "wan0", Addr: netip.MustParsePrefix("203.0.113.1/24")},
		nettest.End{Host: wan, If: "eth0", Addr: netip.MustParsePrefix("203.0.113.2/24")})
	srv := nettest.StartTCPServer(t, wan, "203.0.113.2:0").String()

	ensure := func(wanIf string) func() error {
		return func() error { return netconf.EnsureMasquerade(table, subnet, wanIf) }
	}
	remove := func() error { return netconf.DeleteMasquerade(table) }
	steps := []struct {
		name    string
		do      func() error
		wantSrc string // "" means the connection must fail
		rules   int    // masquerade rules expected in the table; -1: no table
	}{
		{"none yet", nil, "", -1},
		{"ensure", ensure("wan0"), "203.0.113.1", 1},
		{"ensure again", ensure("wan0"), "203.0.113.1", 1},
		{"other WAN interface", ensure("wan9"), "", 1},
		{"back to wan0", ensure("wan0"), "203.0.113.1", 1},
		{"delete", remove, "", -1},
		{"delete again", remove, "", -1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.do != nil {
				inNS(t, router, st.do)
			}
			out, err := nettest.Run(router, "nft", "list", "table", "ip", table)
			switch {
			case st.rules < 0 && err == nil:
				t.Errorf("table still there:\n%s", out)
			case st.rules >= 0 && err != nil:
				t.Errorf("table missing: %v\n%s", err, out)
			case st.rules >= 0 && strings.Count(out, "masquerade") != st.rules:
				t.Errorf("want %d masquerade rules:\n%s", st.rules, out)
			}
			if st.rules > 0 {
				checkForwarding(t, router)
			}

			// Failure shows as a timeout: keep it short where it is expected.
			timeout := 5 * time.Second
			if st.wantSrc == "" {
				timeout = time.Second
			}
			src, err := nettest.PeerAddr(t, chute, srv, timeout)
			host, _, _ := strings.Cut(src, ":")
			switch {
			case st.wantSrc == "" && err == nil:
				t.Errorf("connection succeeded (server saw %s), want it to fail", src)
			case st.wantSrc != "" && err != nil:
				t.Errorf("connection failed: %v", err)
			case st.wantSrc != "" && host != st.wantSrc:
				t.Errorf("server saw %s, want source %s", src, st.wantSrc)
			}
		})
	}
}

func checkForwarding(t *testing.T, h *nettest.Host) {
	t.Helper()
	var v []byte
	inNS(t, h, func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	})
	if strings.TrimSpace(string(v)) != "1" {
		t.Errorf("ip_forward = %q in %s", v, h.Name)
	}
}
