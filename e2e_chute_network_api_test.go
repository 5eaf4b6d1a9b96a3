package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"paradrop/api"
	"paradrop/examples"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// TestChuteAPIOverTheChuteNetwork runs the daemon with its chute network in
// a namespace of the test's own, a LAN host behind it, and two real chutes.
// From inside a chute's network namespace, $PARADROP_API with the chute's
// token and the certificate it finds in /paradrop/api.crt gives it its own
// /self over HTTPS (and $PARADROP_API6 over IPv6) and nothing else;
// another chute's token, the operator's and a login are refused there,
// and the LAN cannot connect at all.
func TestChuteAPIOverTheChuteNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nettest.Require(t, "busybox")
	const apiPort = 8443
	gw, lan := nettest.NewHost(t), nettest.NewHost(t)
	lanAddr := netip.MustParsePrefix("198.51.100.1/24")
	nettest.Veth(t, nettest.End{Host: lan, If: "eth0", Addr: netip.MustParsePrefix("198.51.100.20/24")}, nettest.End{Host: gw, If: "lan0"})
	lan.Route(t, netip.Prefix{}, lanAddr.Addr())
	data := t.TempDir()
	addr := startServe(t, serveOptions{
		dataDir: data, maxUpload: 64 << 20, cgroups: fmt.Sprintf("/paradrop-chuteapi-%d", os.Getpid()),
		network: &sdn.Config{NetNS: gw.NetNS, Subnet: sdn.DefaultSubnet, LANPorts: []string{"lan0"}, LANAddr: lanAddr, APIPort: apiPort},
	})
	tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(tok))
	base := "http://" + addr
	for _, name := range []string{"me", "other"} {
		p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sh, -c, \"env > /data/e; mv /data/e /data/env; cat /paradrop/token > /data/t; mv /data/t /data/token; exec sleep 1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := call(t, http.DefaultClient, base+"/api/v1/chutes?wait=1", operator, "POST", string(p)); code != 200 || !bytes.Contains(body, []byte(`"state": "done"`)) {
			t.Fatalf("install %s: %d %s", name, code, body)
		}
		t.Cleanup(func() { call(t, http.DefaultClient, base+"/api/v1/chutes/"+name+"?wait=1", operator, "DELETE", "") })
	}
	// What each chute found inside itself.
	inside := func(name, file string) string {
		path := filepath.Join(data, "chutes", name, "data", file)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
				return strings.TrimSpace(string(b))
			}
			if time.Now().After(deadline) {
				t.Fatalf("chute %s wrote no %s", name, file)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	gwAddr := netip.AddrPortFrom(sdn.DefaultSubnet.Addr().Next(), apiPort)
	env := inside("me", "env")
	wantURL := "https://" + gwAddr.String()
	if !strings.Contains(env, "PARADROP_API="+wantURL+"\n") || !strings.Contains(env, "PARADROP_API_FINGERPRINT=") {
		t.Fatalf("the chute's environment:\n%s\nwant PARADROP_API=%s and its fingerprint", env, wantURL)
	}
	certPEM, err := os.ReadFile(filepath.Join(data, "chutes", "me", "policy", "api.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatalf("/paradrop/api.crt holds no certificate:\n%s", certPEM)
	}
	// An HTTPS client in the chute's network namespace that trusts what the
	// chute was given, and nothing else.
	client := func(h *nettest.Host) *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return nettest.Dial(t, h, addr, 3*time.Second)
			},
		}}
	}
	chuteNS := func(name string) *nettest.Host {
		return &nettest.Host{Name: name, NetNS: filepath.Join(data, "netns", name)}
	}
	me, other := client(chuteNS("me")), client(chuteNS("other"))
	meTok, otherTok := inside("me", "token"), inside("other", "token")
	url := wantURL + "/api/v1"

	// A chute's first connection may wait for its ARP on a loaded
	// machine: retried while it cannot connect.
	first := func(c *http.Client, token string) (int, []byte) {
		code, body := call(t, c, url+"/self", token, "GET", "")
		for deadline := time.Now().Add(20 * time.Second); code == 0 && time.Now().Before(deadline); {
			code, body = call(t, c, url+"/self", token, "GET", "")
		}
		return code, body
	}
	code, body := first(me, meTok)
	var self struct{ Name, IP string }
	if code != 200 || json.Unmarshal(body, &self) != nil || self.Name != "me" || self.IP == "" {
		t.Fatalf("chute me's own /self over the network: %d %s", code, body)
	}
	if code, body := first(other, otherTok); code != 200 || !bytes.Contains(body, []byte(`"name": "other"`)) {
		t.Errorf("chute other's own /self: %d %s", code, body)
	}
	// The same API at the gateway's IPv6 address, in $PARADROP_API6, named
	// by the same certificate.
	_, url6, ok := strings.Cut(env, "PARADROP_API6=")
	url6, _, _ = strings.Cut(url6, "\n")
	if !ok || !strings.HasPrefix(url6, "https://[fd") || !strings.HasSuffix(url6, fmt.Sprintf("::1]:%d", apiPort)) {
		t.Fatalf("the chute's environment:\n%s\nwant PARADROP_API6 at the gateway's ULA", env)
	}
	code, body = call(t, me, url6+"/api/v1/self", meTok, "GET", "")
	for deadline := time.Now().Add(20 * time.Second); code == 0 && time.Now().Before(deadline); {
		code, body = call(t, me, url6+"/api/v1/self", meTok, "GET", "")
	}
	if code != 200 || !bytes.Contains(body, []byte(`"name": "me"`)) {
		t.Errorf("chute me's own /self over IPv6: %d %s", code, body)
	}
	if code, body := call(t, other, url6+"/api/v1/self", meTok, "GET", ""); code != 401 {
		t.Errorf("me's token from other's IPv6 address: %d %s, want 401", code, body)
	}
	for _, c := range []struct {
		what         string
		from         *http.Client
		token        string
		method, path string
		want         int
	}{
		{"me, another route", me, meTok, "GET", "/chutes", 403},
		{"me, the gateway's info", me, meTok, "GET", "/info", 403},
		{"me, another chute", me, meTok, "GET", "/chutes/other", 404},
		{"me, stopping another chute", me, meTok, "POST", "/chutes/other/stop", 404},
		{"other, chute me", other, otherTok, "GET", "/chutes/me", 404},
		{"me, an ack with nothing waiting", me, meTok, "POST", "/self/policy/ack", 409},
		{"other's token from me's address", me, otherTok, "GET", "/self", 401},
		{"the operator's token", me, operator, "GET", "/chutes", 401},
		{"the operator's token, its own route", me, operator, "GET", "/info", 401},
		{"no token: a login", me, "", "POST", "/login", 401},
	} {
		if code, body := call(t, c.from, url+c.path, c.token, c.method, ""); code != c.want {
			t.Errorf("%s: %s %s: %d %s, want %d", c.what, c.method, c.path, code, body, c.want)
		}
	}

	// The LAN reaches neither the chutes' API nor its port at the
	// gateway's LAN address.
	for _, a := range []string{gwAddr.String(), netip.AddrPortFrom(lanAddr.Addr(), apiPort).String()} {
		if c, err := nettest.Dial(t, lan, a, 3*time.Second); err == nil {
			c.Close()
			t.Errorf("a LAN host connected to %s", a)
		}
	}
}
