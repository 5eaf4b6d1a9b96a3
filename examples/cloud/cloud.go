// Package cloud is a demo gateway's fake Internet: one host, a network
// namespace linked to the gateway by the gateway's WAN uplink, that is
// the resolver the gateway forwards to and answers for a few cloud names
// (each an address of its own), and at every one of them an HTTP
// notification receiver that keeps the alerts POSTed to it and lists
// them at /alerts. Chutes with `wan` reach it by name through the
// gateway's resolver and NAT, as they would reach a vendor's cloud.
//
// Use only addresses that stay on the machine (TEST-NET ranges): the cloud
// routes nothing on, and the uplink is checked like a LAN (see lan.Add).
package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"paradrop/examples/lan"
	"paradrop/netconf"
)

// Bounds on what the receiver keeps: the newest alerts, each cut.
const (
	MaxAlerts    = 200
	MaxAlertBody = 16 << 10
)

// Config places the cloud.
type Config struct {
	Dir    string // where its namespace is pinned
	NetNS  string // the gateway's namespace, "" for the caller's
	Uplink string // the gateway's end of the link, made here (at most 15 bytes)
	// Gateway is the gateway's address on the uplink; the cloud host
	// is in its subnet.
	Gateway netip.Prefix
	Host    netip.Addr // the cloud host's own address: its resolver
	// Names are the cloud names it resolves, each to an address it takes
	// in Gateway's subnet; other names do not exist.
	Names map[string]netip.Addr
	Logf  func(format string, args ...any)
}

// Alert is one request the receiver got.
type Alert struct {
	Time        time.Time `json:"time"`
	From        string    `json:"from"`
	Host        string    `json:"host"` // as the client named it
	Method      string    `json:"method"`
	Path        string    `json:"path"`
	ContentType string    `json:"content_type,omitempty"`
	Body        string    `json:"body"`
}

// Cloud is a running fake Internet.
type Cloud struct {
	cfg  Config
	wan  *lan.LAN
	host *lan.Device
	dns  []*dns.Server
	http *http.Server
	done sync.WaitGroup

	mu     sync.Mutex
	alerts []Alert
}

// Start makes the cloud host (or repairs what a previous run left), gives
// the gateway its address on the uplink and starts the host's servers.
// Close undoes all of it.
func Start(cfg Config) (_ *Cloud, err error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	sub := cfg.Gateway.Masked()
	for name, a := range cfg.Names {
		if !sub.Contains(a) || a == cfg.Gateway.Addr() {
			return nil, fmt.Errorf("cloud: %s at %s: not a host of the uplink's %s", name, a, sub)
		}
	}
	c := &Cloud{cfg: cfg, wan: lan.New(cfg.Dir, cfg.NetNS, cfg.Gateway)}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.host, err = c.wan.Add("cloud", cfg.Uplink, cfg.Host); err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	if err := c.inGW(func() error { return netconf.SetAddr(cfg.Uplink, cfg.Gateway) }); err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	for _, a := range c.addrs() {
		if a == cfg.Host {
			continue
		}
		if err := netconf.InNetNS(c.host.NetNS, func() error {
			return netconf.SetAddr("eth0", netip.PrefixFrom(a, cfg.Gateway.Bits()))
		}); err != nil {
			return nil, fmt.Errorf("cloud: %w", err)
		}
	}
	if err := c.serveDNS(); err != nil {
		return nil, err
	}
	ln, err := c.host.Listen("tcp", ":80")
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	c.http = &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	c.done.Go(func() { c.http.Serve(ln) })
	return c, nil
}

// addrs are the host's addresses: its own and its names'.
func (c *Cloud) addrs() []netip.Addr {
	as := []netip.Addr{c.cfg.Host}
	for _, a := range c.cfg.Names {
		if !slices.Contains(as, a) {
			as = append(as, a)
		}
	}
	return as
}

// serveDNS answers the cloud names at the host's address, UDP and TCP.
func (c *Cloud) serveDNS() error {
	addr := netip.AddrPortFrom(c.cfg.Host, 53).String()
	var pc net.PacketConn
	var tl net.Listener
	if err := netconf.InNetNS(c.host.NetNS, func() (err error) {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		if tl, err = net.Listen("tcp", addr); err != nil {
			pc.Close()
		}
		return err
	}); err != nil {
		return fmt.Errorf("cloud: DNS: %w", err)
	}
	h := dns.HandlerFunc(c.answer)
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: tl, Handler: h}} {
		// Shutdown refuses a server not yet started: wait for it.
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		c.done.Go(func() { s.ActivateAndServe() })
		<-started
		c.dns = append(c.dns, s)
	}
	return nil
}

// answer is the cloud's resolver: its names' A records, no other name.
func (c *Cloud) answer(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	if len(r.Question) != 1 {
		w.WriteMsg(m.SetRcode(r, dns.RcodeFormatError))
		return
	}
	q := r.Question[0]
	m.SetReply(r)
	m.Authoritative = true
	found := false
	for name, a := range c.cfg.Names {
		if dns.CanonicalName(name) != dns.CanonicalName(q.Name) {
			continue
		}
		found = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a.AsSlice()})
		}
	}
	if !found {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// ServeHTTP is the notification receiver: what is POSTed (or PUT) to any
// path of any of its names is kept; GET /alerts lists what was kept,
// oldest first; GET of anything else says where the request landed.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAlertBody))
		if err != nil {
			http.Error(w, `{"error":"body over 16 KiB"}`, http.StatusRequestEntityTooLarge)
			return
		}
		a := Alert{Time: time.Now().UTC(), From: r.RemoteAddr, Host: r.Host, Method: r.Method, Path: r.URL.Path,
			ContentType: r.Header.Get("Content-Type"), Body: string(body)}
		c.mu.Lock()
		c.alerts = append(c.alerts, a)
		if len(c.alerts) > MaxAlerts {
			c.alerts = slices.Delete(c.alerts, 0, len(c.alerts)-MaxAlerts)
		}
		c.mu.Unlock()
		c.cfg.Logf("cloud: %s %s%s from %s: %.200s", r.Method, r.Host, r.URL.Path, r.RemoteAddr, body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "{\"ok\":true}\n")
	case r.Method == http.MethodGet && r.URL.Path == "/alerts":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Alerts []Alert `json:"alerts"`
		}{c.Alerts()})
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "the demo's fake Internet: %s, on the cloud host. Alerts are listed at /alerts.\n", r.Host)
	default:
		http.Error(w, `{"error":"method not allowed"}`, http.StatusMethodNotAllowed)
	}
}

// Alerts are what the receiver kept, oldest first.
func (c *Cloud) Alerts() []Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.alerts)
}

// DNS is the cloud's resolver, for the gateway to forward to.
func (c *Cloud) DNS() netip.AddrPort { return netip.AddrPortFrom(c.cfg.Host, 53) }

// SetUplink brings the gateway's uplink up or down: the WAN cut and back.
func (c *Cloud) SetUplink(up bool) error {
	return c.inGW(func() error {
		l, err := netlink.LinkByName(c.cfg.Uplink)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	})
}

// Close stops the servers and removes the host and the uplink.
func (c *Cloud) Close() error {
	if c.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.http.Shutdown(ctx)
		cancel()
	}
	for _, s := range c.dns {
		s.Shutdown()
	}
	c.done.Wait()
	return c.wan.Close()
}

func (c *Cloud) inGW(fn func() error) error {
	if c.cfg.NetNS == "" {
		return fn()
	}
	return netconf.InNetNS(c.cfg.NetNS, fn)
}
