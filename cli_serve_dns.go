package main

import (
	"flag"
	"net"
	"net/netip"
	"strings"

	"paradrop/chutedns"
	"paradrop/sdn"
)

// dnsOptions configure the chutes' resolver at the gateway's address on
// the chute network, port 53.
type dnsOptions struct {
	upstreams  []string // forwarded to; empty: the host's resolv.conf
	resolvConf string   // where the host's resolvers are read ("": /etc/resolv.conf)
	off        bool
}

func dnsFlags(fs *flag.FlagSet, o *dnsOptions) {
	fs.Func("dns", "upstream resolver chutes' queries are forwarded to, host[:port], repeatable, or 'off' for no chute resolver (default: the nameservers of /etc/resolv.conf)", func(s string) error {
		for _, v := range strings.Split(s, ",") {
			v = strings.TrimSpace(v)
			switch {
			case v == "off":
				o.off = true
			case v == "":
			default:
				if _, _, err := net.SplitHostPort(v); err != nil {
					v = net.JoinHostPort(v, "53")
				}
				if _, err := netip.ParseAddrPort(v); err != nil {
					return err
				}
				o.upstreams = append(o.upstreams, v)
			}
		}
		return nil
	})
}

// serveChuteDNS runs the chutes' resolver on n until the returned stop:
// the gateway's names for every chute, other names forwarded for chutes
// with wan, refused for the rest. A gateway where it cannot listen (a
// resolver of the host's on every address's port 53) runs without it.
func serveChuteDNS(n *sdn.Network, o dnsOptions, logf func(string, ...any)) (stop func()) {
	if o.off {
		return func() {}
	}
	ups := o.upstreams
	if len(ups) == 0 {
		var err error
		conf := o.resolvConf
		if conf == "" {
			conf = "/etc/resolv.conf"
		}
		if ups, err = chutedns.Upstreams(conf); err != nil {
			logf("chute DNS: %v: chutes get the gateway's names only (--dns names an upstream)", err)
		}
	}
	s, err := chutedns.New(chutedns.Config{
		Upstreams: ups,
		Lookup: func(a netip.Addr) (chutedns.Client, bool) {
			v, ok := n.ChuteAt(a)
			return chutedns.Client{Name: v.Name, WAN: v.WAN, Names: v.Names}, ok
		},
		Dial:  n.DialContext,
		Local: map[string][]netip.Addr{"gateway.paradrop": {n.Gateway()}},
	})
	if err != nil {
		logf("chute DNS: %v", err)
		return func() {}
	}
	pc, ln, err := n.ListenDNS()
	if err != nil {
		logf("%v: chutes resolve no names", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() { s.Serve(pc, ln); close(done) }()
	if len(ups) > 0 {
		logf("chute DNS at %s:53, forwarding to %s for chutes with wan", n.Gateway(), strings.Join(ups, ", "))
	} else {
		logf("chute DNS at %s:53, the gateway's names only", n.Gateway())
	}
	return func() { s.Shutdown(); <-done }
}
