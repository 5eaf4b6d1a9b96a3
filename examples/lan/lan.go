// Package lan builds a demo gateway's LAN of simulated devices. Each device
// is a network namespace wired to the gateway by a veth pair: its end is
// eth0 with an address on the LAN and the gateway as its router, and the
// gateway's end is an interface to be given to the chute network as a LAN
// port. What runs on a device is Go code of the caller's whose sockets are
// made inside the device's namespace (see Device.Dial and Device.Listen),
// so a device needs no program of its own.
//
// Use only addresses that stay on the machine (TEST-NET ranges): nothing
// here routes out of it.
package lan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
)

// LAN is a set of devices behind one gateway.
type LAN struct {
	dir     string       // where device namespaces are pinned
	gwNetNS string       // the gateway's namespace, "" for the caller's
	gw      netip.Prefix // the gateway's address on the LAN
	devices []*Device
}

// Device is one simulated host on the LAN.
type Device struct {
	Name  string     // also its namespace's file name
	Port  string     // the gateway's end of its link
	NetNS string     // path of its namespace
	Addr  netip.Addr // on the LAN
}

// New returns an empty LAN whose devices are pinned under dir and linked
// to the gateway at gw, in the namespace at gwNetNS ("" for the caller's).
func New(dir, gwNetNS string, gw netip.Prefix) *LAN {
	return &LAN{dir: dir, gwNetNS: gwNetNS, gw: gw}
}

// Add creates a device (or repairs one a previous run left behind) named
// name at addr, linked to the gateway's interface port (at most 15 bytes).
func (l *LAN) Add(name, port string, addr netip.Addr) (*Device, error) {
	if !l.gw.Masked().Contains(addr) || addr == l.gw.Addr() {
		return nil, fmt.Errorf("lan: device %s: %s is not a host of the gateway's LAN %s", name, addr, l.gw.Masked())
	}
	if err := l.inGW(l.free); err != nil {
		return nil, fmt.Errorf("lan: device %s: %w", name, err)
	}
	d := &Device{Name: name, Port: port, NetNS: filepath.Join(l.dir, name), Addr: addr}
	if err := netconf.EnsureNetNS(d.NetNS); err != nil {
		return nil, fmt.Errorf("lan: device %s: %w", name, err)
	}
	l.devices = append(l.devices, d)
	link := netconf.Link{HostIf: port, NetNS: d.NetNS, MAC: netconf.MACFor("lan-" + name),
		Addr: netip.PrefixFrom(addr, l.gw.Bits()), Gateway: l.gw.Addr()}
	if err := l.inGW(func() error { return netconf.EnsureLink(link) }); err != nil {
		return nil, fmt.Errorf("lan: device %s: %w", name, err)
	}
	return d, nil
}

// Ports are the gateway's ends of the devices' links.
func (l *LAN) Ports() []string {
	ports := make([]string, len(l.devices))
	for i, d := range l.devices {
		ports[i] = d.Port
	}
	return ports
}

// Close removes every device: its link and its namespace.
func (l *LAN) Close() error {
	var errs []error
	for _, d := range l.devices {
		errs = append(errs, l.inGW(func() error { return netconf.DeleteLink(d.Port) }), netconf.DeleteNetNS(d.NetNS))
	}
	l.devices = nil
	return errors.Join(errs...)
}

// free fails if the gateway's namespace already routes part of the LAN's
// subnet elsewhere, as it does when the subnet is the machine's real
// network: the devices would take the addresses of real hosts. A route the
// gateway's own LAN address is the source of is ours, from an earlier run.
func (l *LAN) free() error {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		// The default route overlaps everything and is no network.
		if r.Dst == nil || r.Src.Equal(l.gw.Addr().AsSlice()) {
			continue
		}
		dst, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if p := netip.PrefixFrom(dst.Unmap(), ones); ones > 0 && p.Overlaps(l.gw.Masked()) {
			name := fmt.Sprint("interface ", r.LinkIndex)
			if link, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				name = link.Attrs().Name
			}
			return fmt.Errorf("the LAN %s overlaps %s on %s, a network this machine already uses: choose another", l.gw.Masked(), p, name)
		}
	}
	return nil
}

func (l *LAN) inGW(fn func() error) error {
	if l.gwNetNS == "" {
		return fn()
	}
	return netconf.InNetNS(l.gwNetNS, fn)
}

// DialContext connects from the device, as net.Dialer's does.
func (d *Device) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := netconf.InNetNS(d.NetNS, func() (err error) {
		c, err = new(net.Dialer).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient is an HTTP client on the device, whose requests time out
// after timeout.
func (d *Device) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// Listen listens on the device, as net.Listen does.
func (d *Device) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := netconf.InNetNS(d.NetNS, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}
