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
// the gateway's own name.
func TestChuteDNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chutedns's own tests run without)")
	}
	tb := newTestbed(t)
	web, _ := tb.chute(t, "web", 0, Policy{WAN: true}, Bandwidth{})
	db, _ := tb.chute(t, "db", 1, Policy{}, Bandwidth{})

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
			name, wan, ok := tb.n.ChuteAt(a)
			return chutedns.Client{Name: name, WAN: wan}, ok
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
}
