//go:build !router

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"paradrop/api"
	"paradrop/examples/camera"
	"paradrop/examples/cloud"
	"paradrop/examples/lan"
	"paradrop/netconf/nettest"
	"paradrop/sdn"
)

// startTestHome makes a home as the demo has it, for a test: the gateway's
// namespace, its WAN uplink "wan0" to the demo's fake Internet (its names
// and addresses) and its LAN at lanAddr, with no device yet; all removed
// when the test ends.
func startTestHome(t *testing.T, lanAddr netip.Prefix) (*nettest.Host, *cloud.Cloud, *lan.LAN) {
	t.Helper()
	gw := nettest.NewHost(t)
	internet, err := cloud.Start(cloud.Config{Dir: t.TempDir(), NetNS: gw.NetNS, Uplink: "wan0",
		Gateway: demoWANAddr, Host: demoCloudHost, Names: demoCloudNames, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := internet.Close(); err != nil {
			t.Error(err)
		}
	})
	l := lan.New(t.TempDir(), gw.NetNS, lanAddr)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return gw, internet, l
}

// lanGet GETs base+path with c, a LAN host's client (the owner's view of a
// chute's page), and decodes a 200 answer's JSON into out; with out nil the
// answer only has to be 200.
func lanGet(c *http.Client, base, path string, out any) error {
	resp, err := c.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// acceptLoopback listens on the test's loopback until the test ends and
// hands each connection to handle in its own goroutine, closing it after;
// it returns the address.
func acceptLoopback(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// startCamera puts SecCams' camera (the DCS-931L at the address and with
// the credentials its manifest names) on l, its link the gateway's port,
// seeing what mode holds (a camera.Mode), until the test ends.
func startCamera(t *testing.T, l *lan.LAN, port string, mode *atomic.Value) {
	t.Helper()
	dev, err := l.Add("camera", port, netip.MustParseAddr(secCamsCamera))
	if err != nil {
		t.Fatal(err)
	}
	cam := camera.New(camera.Config{User: "admin", Password: "seccams", Seed: 1, Mode: func() camera.Mode { return mode.Load().(camera.Mode) }})
	ln, err := dev.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: cam}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// startHomeDaemon runs the daemon of a home startTestHome made, on data
// with the cgroup parent cgroups, until the test ends; it returns the base
// URL of its chutes' API and the operator token.
func startHomeDaemon(t *testing.T, gw *nettest.Host, internet *cloud.Cloud, l *lan.LAN, lanAddr netip.Prefix, data, cgroups string) (base, operator string) {
	t.Helper()
	t.Cleanup(func() { dropCgroupParent(t, cgroups) })
	addr := startServe(t, serveOptions{
		dataDir: data, maxUpload: 64 << 20, maxUnpacked: 256 << 20, cgroups: cgroups,
		network: &sdn.Config{NetNS: gw.NetNS, Subnet: sdn.DefaultSubnet, LANPorts: l.Ports(), LANAddr: lanAddr, WAN: "wan0"},
		dns:     dnsOptions{upstreams: []string{internet.DNS().String()}},
	})
	tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/api/v1/chutes", strings.TrimSpace(string(tok))
}
