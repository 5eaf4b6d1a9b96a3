package main

import (
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"paradrop/chute"
)

// defaultGatewayPorts are the services a home gateway runs besides ours:
// SSH, DNS, DHCP and its own web admin (LuCI on OpenWrt).
const defaultGatewayPorts = "22/tcp,53/tcp,53/udp,67/udp,80/tcp,443/tcp"

var wellKnown = map[int]string{22: "SSH", 53: "DNS", 67: "DHCP", 80: "the gateway's web admin", 443: "the gateway's web admin"}

// gatewayPortsFlag defines --gateway-ports on fs, setting ports: the
// gateway's own services, which no chute may expose. serve adds the ports
// it listens on.
func gatewayPortsFlag(fs *flag.FlagSet, ports *[]chute.GatewayPort) {
	fs.Func("gateway-ports", "ports of the gateway's own services that no chute may expose, as PORT/PROTO,... (default "+defaultGatewayPorts+"; the API's and the controller's are always added)", func(s string) (err error) {
		*ports, err = parseGatewayPorts(s)
		return err
	})
}

func parseGatewayPorts(s string) ([]chute.GatewayPort, error) {
	var out []chute.GatewayPort
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		num, proto, _ := strings.Cut(f, "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 || proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("%q: want PORT/tcp or PORT/udp", f)
		}
		what := wellKnown[n]
		if what == "" {
			what = "a gateway service"
		}
		out = append(out, chute.GatewayPort{Port: n, Proto: proto, What: what})
	}
	return out, nil
}

// ownPorts adds to ports those the daemon itself listens on: the API and
// web UI at each of api, and the OpenFlow controller at controller ("" if the
// network is off).
func ownPorts(ports []chute.GatewayPort, api []net.Addr, controller string) []chute.GatewayPort {
	out := append([]chute.GatewayPort(nil), ports...)
	for _, addr := range api {
		if a, ok := addr.(*net.TCPAddr); ok && !slices.ContainsFunc(out, func(p chute.GatewayPort) bool { return p.Port == a.Port && p.Proto == "tcp" }) {
			out = append(out, chute.GatewayPort{Port: a.Port, Proto: "tcp", What: "the paradrop API and web UI"})
		}
	}
	if _, p, err := net.SplitHostPort(controller); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, chute.GatewayPort{Port: n, Proto: "tcp", What: "the OpenFlow controller"})
		}
	}
	return out
}

func listenerAddrs(lns []net.Listener) []net.Addr {
	addrs := make([]net.Addr, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr()
	}
	return addrs
}
