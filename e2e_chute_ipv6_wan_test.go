package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/api"
	"paradrop/examples"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// TestChuteIPv6WAN runs the daemon with a delegated IPv6 prefix and a WAN
// uplink to a fake internet, in namespaces of the test's own, and two
// real chutes: the one with wan reaches an internet host over IPv6 from
// its global address (routed: the host sees that address), the one
// without does not, and the internet host can neither connect to nor
// ping either chute's global address.
func TestChuteIPv6WAN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox", "ip")
	prefix := netip.MustParsePrefix("2001:db8:6400::/56")
	wanGW6, inet6 := netip.MustParseAddr("2001:db8:ffff::1"), netip.MustParseAddr("2001:db8:ffff::5")
	gw, inet := nettest.NewHost(t), nettest.NewHost(t)
	nettest.Veth(t, nettest.End{Host: inet, If: "eth0"}, nettest.End{Host: gw, If: "wan0"})
	nettest.Exec(t, gw, "ip", "-6", "addr", "add", netip.PrefixFrom(wanGW6, 64).String(), "dev", "wan0", "nodad")
	nettest.Exec(t, inet, "ip", "-6", "addr", "add", netip.PrefixFrom(inet6, 64).String(), "dev", "eth0", "nodad")
	// The ISP's route to the prefix it delegated.
	nettest.Exec(t, inet, "ip", "-6", "route", "add", prefix.String(), "via", wanGW6.String())
	srv := nettest.StartTCPServer(t, inet, netip.AddrPortFrom(inet6, 80).String()).String()

	data := t.TempDir()
	addr := startServe(t, serveOptions{
		dataDir: data, maxUpload: 64 << 20, cgroups: fmt.Sprintf("/paradrop-v6wan-%d", os.Getpid()),
		network: &sdn.Config{NetNS: gw.NetNS, Subnet: sdn.DefaultSubnet, WAN: "wan0", Prefix6: prefix},
	})
	tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(tok))
	base := "http://" + addr + "/api/v1/chutes"
	global := map[string]netip.Addr{}
	for name, net := range map[string]string{"out": "net:\n  wan: true\n", "in": ""} {
		p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n"+net, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := call(t, http.DefaultClient, base+"?wait=1", operator, "POST", string(p)); code != 200 || !bytes.Contains(body, []byte(`"state": "done"`)) {
			t.Fatalf("install %s: %d %s", name, code, body)
		}
		t.Cleanup(func() { call(t, http.DefaultClient, base+"/"+name+"?wait=1", operator, "DELETE", "") })
		code, body := call(t, http.DefaultClient, base+"/"+name, operator, "GET", "")
		var info struct {
			IPv6Global string `json:"ipv6_global"`
		}
		if err := json.Unmarshal(body, &info); code != 200 || err != nil {
			t.Fatalf("info of %s: %d %s", name, code, body)
		}
		a, err := netip.ParseAddr(info.IPv6Global)
		if err != nil || !prefix.Contains(a) {
			t.Fatalf("chute %s's ipv6_global %q is not in %s", name, info.IPv6Global, prefix)
		}
		global[name] = a
	}
	chuteNS := func(name string) *nettest.Host {
		return &nettest.Host{Name: name, NetNS: filepath.Join(data, "netns", name)}
	}
	out, in := chuteNS("out"), chuteNS("in")

	// The first connection may wait for neighbour discovery on a loaded
	// machine: retried while it fails.
	var seen string
	for deadline := time.Now().Add(20 * time.Second); ; {
		if seen, err = nettest.PeerAddr(t, out, srv, 3*time.Second); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("the chute with wan does not reach the internet host over IPv6: %v", err)
	}
	if want := "[" + global["out"].String() + "]:"; !strings.HasPrefix(seen, want) {
		t.Errorf("the internet host saw %s, want the chute's global address %s (routed, no NAT)", seen, global["out"])
	}
	if _, err := nettest.PeerAddr(t, in, srv, 3*time.Second); err == nil {
		t.Error("the chute without wan reaches the internet host over IPv6")
	}
	for name, h := range map[string]*nettest.Host{"out": out, "in": in} {
		chuteSrv := nettest.StartTCPServer(t, h, netip.AddrPortFrom(global[name], 8080).String()).String()
		if _, err := nettest.PeerAddr(t, inet, chuteSrv, 3*time.Second); err == nil {
			t.Errorf("the internet host opened a connection to chute %s at %s", name, chuteSrv)
		}
		if _, err := nettest.Run(inet, "busybox", "ping", "-c", "2", "-W", "1", global[name].String()); err == nil {
			t.Errorf("the internet host pings chute %s at %s", name, global[name])
		}
	}
}
