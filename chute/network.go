package chute

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"paradrop/chute/manifest"
	"paradrop/netconf"
	"paradrop/sdn"
)

// Network is the chutes' network as the manager drives it; *sdn.Network
// satisfies it. Without one, chutes have a loopback-only namespace.
type Network interface {
	Attach(ctx context.Context, c sdn.Chute) error
	Update(ctx context.Context, c sdn.Chute) error
	Detach(ctx context.Context, name string) error
	Counters(ctx context.Context, chute string) (sdn.Counters, error)
}

// GatewayPort is a port the gateway itself serves (its API, SSH, DNS...):
// a chute exposing it on the gateway would take its traffic.
type GatewayPort struct {
	Port  int
	Proto string // tcp or udp
	What  string // the service, for messages
}

func (p GatewayPort) String() string { return fmt.Sprintf("%d/%s (%s)", p.Port, p.Proto, p.What) }

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
	return sdn.Chute{Name: name, NetNS: m.paths.netns(name), MAC: mac, IP: ip, Net: man.Net, Bandwidth: bw}, nil
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
	if err := m.checkPorts(man); err != nil {
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

// Bytes reports a chute's traffic for usage accounting.
func (m *Manager) Bytes(ctx context.Context, chute string) (rx, tx uint64, err error) {
	if m.cfg.Network == nil {
		return 0, 0, nil
	}
	c, err := m.cfg.Network.Counters(ctx, chute)
	return c.RxBytes, c.TxBytes, err
}
