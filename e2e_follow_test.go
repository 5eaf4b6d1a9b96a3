//go:build !router

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/fleet"
	"paradrop/internal/mosquitto"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
	"paradrop/usp"
)

// TestFollowMeBetweenPeers: two gateways, each with its chute network and
// Open vSwitch in a namespace of its own and one LAN port, trust each
// other (--follow-peer). A device namespace with one MAC has a link to
// each LAN, one up at a time. Developer acme's chute following the device,
// installed on A, moves to B once the device has stayed on B's LAN past
// the hold, and is acme's there; a flap back to A shorter than the hold
// does not move it back. Developer beta's chute following the same device
// stays on A: beta is no developer on B. Developer gamma, not allowed to
// follow devices, cannot install a chute that does.
func TestFollowMeBetweenPeers(t *testing.T) { followMe(t, false) }

// TestFollowMeFleet is the same with the fleet's controller moving the
// chute: the gateways are USP agents on a broker and name no peer; the
// controller reads their Device.Hosts and asks A to migrate to B.
func TestFollowMeFleet(t *testing.T) { followMe(t, true) }

func followMe(t *testing.T, withFleet bool) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	const window, hold = 2 * time.Second, 8 * time.Second
	mac := net.HardwareAddr{0x02, 0xf0, 0, 0, 0, 0x0a}
	dev := nettest.NewHost(t)
	type gateway struct {
		ns   *nettest.Host
		lan  netip.Prefix // the gateway's LAN address
		devA netip.Prefix // the device's address on that LAN
		link string       // the device's link to it
		data string
		url  string
	}
	gws := []*gateway{
		{ns: nettest.NewHost(t), lan: netip.MustParsePrefix("198.51.100.1/24"), devA: netip.MustParsePrefix("198.51.100.20/24"), link: "eth0"},
		{ns: nettest.NewHost(t), lan: netip.MustParsePrefix("203.0.113.1/24"), devA: netip.MustParsePrefix("203.0.113.20/24"), link: "eth1"},
	}
	for _, g := range gws {
		nettest.Veth(t, nettest.End{Host: dev, If: g.link, Addr: g.devA, MAC: mac}, nettest.End{Host: g.ns, If: "lan0"})
		g.data = t.TempDir()
	}
	setLink := func(name string, up bool) {
		t.Helper()
		if err := netconf.InNetNS(dev.NetNS, func() error {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if up {
				return netlink.LinkSetUp(l)
			}
			return netlink.LinkSetDown(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// at puts the device on gateway i's LAN alone and has it say so.
	at := func(i int) {
		t.Helper()
		setLink(gws[1-i].link, false)
		setLink(gws[i].link, true)
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := nettest.Run(dev, "busybox", "ping", "-c", "1", "-W", "1", gws[i].lan.Addr().String())
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the device cannot ping gateway %d: %v", i, err)
			}
		}
	}
	setLink(gws[1].link, false)
	// Each gateway's API listens on loopback, where plain http may carry
	// the peer's token; each names the other's token file, read at use.
	for _, g := range gws {
		g.url = "http://" + freePort(t)
	}
	var broker *mosquitto.Broker
	const ctrl = "self::follow-fleet"
	fleetGWs := map[string]followPeer{}
	if withFleet {
		broker = mosquitto.Start(t)
	}
	for i, g := range gws {
		peer := gws[1-i]
		opts := serveOptions{
			dataDir: g.data, maxUpload: 64 << 20, cgroups: fmt.Sprintf("/paradrop-follow%d-%d", i, os.Getpid()),
			network: &sdn.Config{NetNS: g.ns.NetNS, Bridge: fmt.Sprintf("pdfollow%d", i), Controller: "127.0.0.1:6654",
				Subnet: sdn.DefaultSubnet, LANPorts: []string{"lan0"}, LANAddr: g.lan, HostWindow: window},
			follow: followOptions{hold: hold, poll: 500 * time.Millisecond,
				peers: []followPeer{{url: peer.url, tokenFile: filepath.Join(peer.data, api.TokenFile)}}},
		}
		if withFleet {
			id := fmt.Sprintf("os::follow-%d", i)
			opts.follow.peers = nil
			opts.usp = uspOptions{broker: broker.URL(), endpointID: id, controllers: map[string]usp.Controller{ctrl: {Topic: "usp/controllers/" + ctrl}}}
			fleetGWs[id] = followPeer{url: g.url, tokenFile: filepath.Join(g.data, api.TokenFile)}
		}
		opts.listen = strings.TrimPrefix(g.url, "http://")
		startServe(t, opts)
	}
	if withFleet {
		fcfg, err := fleetFollowOptions{gateways: fleetGWs, hold: hold, every: 500 * time.Millisecond}.config(t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		agents := map[string]string{}
		for id := range fleetGWs {
			agents[id] = "usp/agents/" + id
		}
		s, err := fleet.NewServer(t.Context(), fleet.ServerConfig{Broker: broker.URL(), EndpointID: ctrl, Topic: "usp/controllers/" + ctrl,
			Listen: "127.0.0.1:0", Agents: agents, Logf: t.Logf, Follow: fcfg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	at(0)
	token := func(g *gateway) string {
		b, err := os.ReadFile(filepath.Join(g.data, api.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// acme is a developer on both gateways, beta on A alone, both allowed
	// to follow devices; gamma is not.
	devToken := func(g *gateway, name string) string {
		t.Helper()
		follow := name != "gamma"
		code, body := call(t, http.DefaultClient, g.url+"/api/v1/developers", token(g), "POST",
			fmt.Sprintf(`{"name":%q,"quota":{"chutes":2,"memory":"256Mi"},"allow":{"unsigned":true,"follow":%t}}`, name, follow))
		var d struct{ Token string }
		if code != http.StatusCreated || json.Unmarshal(body, &d) != nil || d.Token == "" {
			t.Fatalf("developer %s: %d %s", name, code, body)
		}
		return d.Token
	}
	acmeA, betaA, gammaA := devToken(gws[0], "acme"), devToken(gws[0], "beta"), devToken(gws[0], "gamma")
	devToken(gws[1], "acme")
	bound := func(name string) []byte {
		pkg, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sh, -c, \"exec sleep 1000\"]\nstop_grace: 1s\nfollow: {mac: \""+mac.String()+"\"}\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		return pkg
	}
	if code, body := call(t, http.DefaultClient, gws[0].url+"/api/v1/chutes?wait=1", gammaA, "POST", string(bound("spy"))); code != http.StatusForbidden || !bytes.Contains(body, []byte("follow")) {
		t.Fatalf("gamma, not allowed to follow, installs a chute following a device: %d %s", code, body)
	}
	for _, c := range []struct{ name, token string }{{"tracker", acmeA}, {"stay", betaA}} {
		if code, body := call(t, http.DefaultClient, gws[0].url+"/api/v1/chutes?wait=1", c.token, "POST", string(bound(c.name))); code != 200 || !bytes.Contains(body, []byte(`"state": "done"`)) {
			t.Fatalf("install %s on A: %d %s", c.name, code, body)
		}
		for _, g := range gws {
			t.Cleanup(func() { call(t, http.DefaultClient, g.url+"/api/v1/chutes/"+c.name+"?wait=1", token(g), "DELETE", "") })
		}
	}
	// whereIs is the gateway chute runs on (-1: none, -2: both).
	whereIs := func(chute string) int {
		w := -1
		for i, g := range gws {
			code, body := call(t, http.DefaultClient, g.url+"/api/v1/chutes/"+chute, token(g), "GET", "")
			var in struct{ State string }
			if code == 200 && json.Unmarshal(body, &in) == nil && in.State == "running" {
				if w != -1 {
					return -2
				}
				w = i
			}
		}
		return w
	}
	where := func() int { return whereIs("tracker") }
	// stays checks that the chute runs on gateway i alone throughout d.
	stays := func(i int, d time.Duration, what string) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if w := where(); w != i {
				t.Fatalf("%s: the chute runs on %d, want %d", what, w, i)
			}
		}
	}
	stays(0, window+hold, "the device at home")

	at(1)
	moved := time.Now()
	deadline := moved.Add(window + hold + 60*time.Second)
	for where() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the chute did not follow its device to B (on %d)", where())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if took := time.Since(moved); took < hold {
		t.Errorf("the chute moved %v after its device, before the hold (%v)", took, hold)
	}
	t.Logf("the chute followed its device to B in %v", time.Since(moved))
	// It is acme's there; the token A had B make for the move is revoked.
	code, body := call(t, http.DefaultClient, gws[1].url+"/api/v1/chutes/tracker", token(gws[1]), "GET", "")
	var in struct{ Owner string }
	if code != 200 || json.Unmarshal(body, &in) != nil || in.Owner != "acme" {
		t.Errorf("the chute on B: %d %s, want acme's", code, body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body := call(t, http.DefaultClient, gws[1].url+"/api/v1/developers/acme", token(gws[1]), "GET", "")
		var d struct{ Tokens []json.RawMessage }
		if code == 200 && json.Unmarshal(body, &d) == nil && len(d.Tokens) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acme on B after the move: %d %s, want its one token", code, body)
		}
	}
	// beta is no developer on B: its chute stays on A.
	if w := whereIs("stay"); w != 0 {
		t.Errorf("beta's chute runs on %d, want A (beta is no developer on B)", w)
	}

	// A flap back to A: longer than B's window (B sees it leave), shorter
	// than the hold.
	at(0)
	stays(1, hold/2, "a short flap to A")
	at(1)
	stays(1, window+hold+2*time.Second, "back on B after a short flap")
	if w := whereIs("stay"); w != 0 {
		t.Errorf("beta's chute runs on %d, want A", w)
	}
}
