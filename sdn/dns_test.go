package sdn

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"

	"paradrop/chutedns"
	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// TestChuteDNS: the resolver at the gateway's address, as serve runs it,
// through the flows: a chute with wan resolves a name its upstream (a
// test server in the gateway's namespace, never the real network) knows,
// over UDP and TCP; a chute without wan is refused it and still gets
// the gateway's own name. Chutes resolve their own name and their mutual
// peers', and no other chute's: spy lists web as its peer, web does not
// list spy, and spy learns nothing of web.
func TestChuteDNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chutedns's own tests run without)")
	}
	tb := newTestbed(t)
	web, webC := tb.chute(t, "web", 0, Policy{WAN: true, Peers: []string{"db"}}, Bandwidth{})
	db, dbC := tb.chute(t, "db", 1, Policy{Peers: []string{"web"}}, Bandwidth{})
	spy, _ := tb.chute(t, "spy", 2, Policy{WAN: true, Peers: []string{"web"}}, Bandwidth{})

	answer := netip.MustParseAddr("198.51.100.77")
	upAddr := netip.AddrPortFrom(lanGW.Addr(), 5353).String()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: answer.AsSlice()})
		w.WriteMsg(m)
	})
	for _, netw := range []string{"udp", "tcp"} {
		srv := &dns.Server{Handler: h}
		err := netconf.InNetNS(tb.gw.NetNS, func() (err error) {
			if netw == "udp" {
				srv.PacketConn, err = net.ListenPacket("udp", upAddr)
			} else {
				srv.Listener, err = net.Listen("tcp", upAddr)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}

	s, err := chutedns.New(chutedns.Config{
		Upstreams: []string{upAddr},
		Lookup: func(a netip.Addr) (chutedns.Client, bool) {
			v, ok := tb.n.ChuteAt(a)
			return chutedns.Client{Name: v.Name, WAN: v.WAN, Names: v.Names}, ok
		},
		Dial:  tb.n.DialContext,
		Local: map[string][]netip.Addr{"gateway.paradrop": {tb.n.Gateway()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pc, ln, err := tb.n.ListenDNS()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(pc, ln); close(done) }()
	t.Cleanup(func() { s.Shutdown(); <-done })

	resolver := netip.AddrPortFrom(tb.n.Gateway(), DNSPort).String()
	ask := func(h *nettest.Host, netw, name string) (*dns.Msg, error) {
		c := &dns.Client{Net: netw, Timeout: 3 * time.Second}
		var conn *dns.Conn
		if err := netconf.InNetNS(h.NetNS, func() (err error) { conn, err = c.Dial(resolver); return err }); err != nil {
			return nil, err
		}
		defer conn.Close()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		r, _, err := c.ExchangeWithConn(m, conn)
		return r, err
	}
	first := func(r *dns.Msg) string {
		if len(r.Answer) == 0 {
			return ""
		}
		if a, ok := r.Answer[0].(*dns.A); ok {
			return a.A.String()
		}
		return ""
	}
	for _, netw := range []string{"udp", "tcp"} {
		r, err := ask(web, netw, "cloud.example")
		if err != nil || r.Rcode != dns.RcodeSuccess || first(r) != answer.String() {
			t.Errorf("chute with wan, %s: %v, %v; want %s", netw, r, err, answer)
		}
	}
	if r, err := ask(db, "udp", "cloud.example"); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("chute without wan: %v, %v; want REFUSED", r, err)
	}
	if r, err := ask(db, "udp", "gateway.paradrop"); err != nil || first(r) != tb.n.Gateway().String() {
		t.Errorf("chute without wan asking for the gateway: %v, %v; want %s", r, err, tb.n.Gateway())
	}
	for _, c := range []struct {
		from       *nettest.Host
		name, want string
		rcode      int
	}{
		{web, "web", webC.IP.String(), dns.RcodeSuccess},
		{web, "db", dbC.IP.String(), dns.RcodeSuccess},
		{db, "web", webC.IP.String(), dns.RcodeSuccess},
		{spy, "web", "", dns.RcodeNameError},
		{spy, "db", "", dns.RcodeNameError},
		{db, "spy", "", dns.RcodeNameError},
	} {
		if r, err := ask(c.from, "udp", c.name); err != nil || r.Rcode != c.rcode || first(r) != c.want {
			t.Errorf("%s asking for %s: %v, %v; want %s %q", c.from.Name, c.name, r, err, dns.RcodeToString[c.rcode], c.want)
		}
	}
}
