package chute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"paradrop/chute/manifest"
	"paradrop/netconf"
	"paradrop/sdn"
	"paradrop/usage"
)

// Network is the chutes' network as the manager drives it; *sdn.Network
// satisfies it. Without one, chutes have a loopback-only namespace.
type Network interface {
	Attach(ctx context.Context, c sdn.Chute) error
	Update(ctx context.Context, c sdn.Chute) error
	Detach(ctx context.Context, name string) error
	Counters(ctx context.Context, chute string) (sdn.Counters, error)
	// Hosts are the LAN hosts it sees (chute/hosts.go).
	Hosts() []sdn.Host
	AllCounters(ctx context.Context) (map[string]sdn.Counters, error)
	// Enforceable refuses a policy this network cannot give as written.
	Enforceable(p sdn.Policy) error
}

// GatewayPort is a port the gateway itself serves (its API, SSH, DNS...):
// a chute exposing it on the gateway would take its traffic.
type GatewayPort struct {
	Port  int
	Proto string // tcp or udp
	What  string // the service, for messages
}

func (p GatewayPort) String() string { return fmt.Sprintf("%d/%s (%s)", p.Port, p.Proto, p.What) }

// netPolicy converts the manifest's net section into the network's typed
// policy, the one place where manifest text becomes addresses, and
// refuses what the switch cannot enforce (ErrInvalid: the manifest asks
// for access this gateway would silently not give).
func netPolicy(n manifest.Net) (sdn.Policy, error) {
	p := sdn.Policy{WAN: n.WAN, Peers: n.Peers}
	var errs []error
	bad := func(field, v string, err error) {
		errs = append(errs, fmt.Errorf("%s: %q: %v", field, v, err))
	}
	for i, r := range n.LAN {
		f := fmt.Sprintf("net.lan[%d]", i)
		var lr sdn.LANRule
		var err error
		switch {
		case r.IP != "":
			var a netip.Addr
			if a, err = netip.ParseAddr(r.IP); err == nil {
				lr.Prefix = netip.PrefixFrom(a, a.BitLen())
			}
		case r.CIDR != "":
			lr.Prefix, err = netip.ParsePrefix(r.CIDR)
		default:
			lr.MAC, err = net.ParseMAC(r.MAC)
		}
		if err != nil {
			bad(f, r.IP+r.CIDR+r.MAC, err)
			continue
		}
		for _, port := range r.Ports {
			lr.Ports = append(lr.Ports, uint16(port))
		}
		p.LAN = append(p.LAN, lr)
	}
	for _, e := range n.Expose {
		p.Expose = append(p.Expose, sdn.Expose{Port: uint16(e.Port), GatewayPort: uint16(e.GatewayPort), Proto: proto(e.Proto)})
	}
	for i, r := range n.Redirect {
		to, err := netip.ParseAddrPort(r.To)
		if err != nil {
			bad(fmt.Sprintf("net.redirect[%d].to", i), r.To, err)
			continue
		}
		p.Redirect = append(p.Redirect, sdn.Redirect{To: to, Port: uint16(r.Port), Proto: proto(r.Proto)})
	}
	errs = append(errs, p.Check())
	if err := errors.Join(errs...); err != nil {
		return sdn.Policy{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return p, nil
}

// proto is a manifest's protocol name as a number; the manifest's
// validation allows only tcp and udp, and Check refuses anything else.
func proto(name string) sdn.Proto {
	switch name {
	case "tcp":
		return sdn.TCP
	case "udp":
		return sdn.UDP
	}
	return 0
}

// netBandwidth is the manifest's bandwidth in the network's terms.
func netBandwidth(bw manifest.Bandwidth) sdn.Bandwidth {
	return sdn.Bandwidth{Egress: sdn.BitRate(bw.Egress), Ingress: sdn.BitRate(bw.Ingress)}
}

// checkNet refuses a manifest whose net section the network cannot
// enforce, or that exposes one of the gateway's own ports.
func (m *Manager) checkNet(man *manifest.Manifest) error {
	p, err := netPolicy(man.Net)
	if err == nil && m.cfg.Network != nil {
		if err = m.cfg.Network.Enforceable(p); err != nil {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return errors.Join(err, m.checkPorts(man))
}

// checkPorts refuses a manifest exposing one of the gateway's own ports.
func (m *Manager) checkPorts(man *manifest.Manifest) error {
	for i, e := range man.Net.Expose {
		for _, g := range m.cfg.GatewayPorts {
			if e.GatewayPort == g.Port && e.Proto == g.Proto {
				return fmt.Errorf("%w: net.expose[%d].gateway_port: %d/%s is the gateway's own port, used by %s", ErrConflict, i, g.Port, g.Proto, g.What)
			}
		}
	}
	return nil
}

// withIPv6 adds the chute's IPv6 addresses, which follow from its IPv4
// one and the network's IPv6 subnets.
func (m *Manager) withIPv6(in Info) Info {
	if ip, err := netip.ParseAddr(in.IP); err == nil {
		if a := sdn.AddressFor6(m.cfg.Subnet, m.cfg.Subnet6, ip); a.IsValid() {
			in.IPv6 = a.String()
		}
		if a := sdn.AddressFor6(m.cfg.Subnet, m.cfg.Global6, ip); a.IsValid() {
			in.IPv6Global = a.String()
		}
	}
	return in
}

// address gives a chute its IP and MAC for its lifetime: chosen once, from
// its uid slot and its name, and kept in its record so they survive
// restarts, updates and daemon upgrades.
func (m *Manager) address(slot int, name string) (ip, mac string) {
	if !m.cfg.Subnet.IsValid() {
		return "", ""
	}
	if a := sdn.AddressFor(m.cfg.Subnet, slot); a.IsValid() {
		ip = a.String()
	}
	return ip, netconf.MACFor(name).String()
}

// netChute describes the chute to the network, with the bandwidth in force.
func (m *Manager) netChute(name string, man *manifest.Manifest, bw manifest.Bandwidth) (sdn.Chute, error) {
	e, err := m.entry(name)
	if err != nil {
		return sdn.Chute{}, err
	}
	m.mu.Lock()
	ipS, macS := e.rec.IP, e.rec.MAC
	m.mu.Unlock()
	ip, err := netip.ParseAddr(ipS)
	if err != nil {
		return sdn.Chute{}, fmt.Errorf("chute %q has no address in the chute subnet (%d chutes at most)", name, 244)
	}
	mac, err := net.ParseMAC(macS)
	if err != nil {
		return sdn.Chute{}, fmt.Errorf("chute %q: MAC %q: %w", name, macS, err)
	}
	pol, err := netPolicy(man.Net)
	if err != nil {
		return sdn.Chute{}, fmt.Errorf("chute %q: %w", name, err)
	}
	return sdn.Chute{Name: name, NetNS: m.paths.netns(name), MAC: mac, IP: ip, Net: pol, Bandwidth: netBandwidth(bw)}, nil
}

// attach connects the chute's namespace to the gateway's network, as its
// manifest declares, with the bandwidth policy in force. It is idempotent;
// after a daemon restart it re-creates the flows of a re-adopted chute.
func (m *Manager) attach(ctx context.Context, name string, man *manifest.Manifest) error {
	if m.cfg.Network == nil {
		return nil
	}
	// Checked at install too; again here in case the gateway has taken
	// the port since (a daemon restarted with other ports).
	if err := m.checkNet(man); err != nil {
		return err
	}
	res, err := m.Resources(name)
	if err != nil {
		return err
	}
	c, err := m.netChute(name, man, res.Bandwidth)
	if err != nil {
		return err
	}
	if err := m.cfg.Network.Attach(ctx, c); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// SetBandwidth applies new rates to an attached chute live.
func (m *Manager) setBandwidth(ctx context.Context, name string, bw manifest.Bandwidth) error {
	e, err := m.entry(name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	man := e.rec.Manifest
	m.mu.Unlock()
	c, err := m.netChute(name, man, bw)
	if err != nil {
		return err
	}
	return m.cfg.Network.Update(ctx, c)
}

// Bytes reports the chutes' traffic for usage accounting.
func (m *Manager) Bytes(ctx context.Context) (map[string]usage.Traffic, error) {
	if m.cfg.Network == nil {
		return nil, nil
	}
	cs, err := m.cfg.Network.AllCounters(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]usage.Traffic, len(cs))
	for name, c := range cs {
		out[name] = usage.Traffic{Rx: c.RxBytes, Tx: c.TxBytes}
	}
	return out, nil
}
