package chutedns

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The tests run on loopback only: the upstream is a test server on
// 127.0.0.1, and chutes are other loopback addresses (127.0.0.2, .3).
var (
	wanChute   = netip.MustParseAddr("127.0.0.2")
	lanChute   = netip.MustParseAddr("127.0.0.3")
	answerAddr = netip.MustParseAddr("198.51.100.7")
	gwAddr     = netip.MustParseAddr("10.131.0.1")
	friendAddr = netip.MustParseAddr("10.131.0.12")
)

// upstream is a test DNS server answering every A query with answerAddr
// after delay; it counts the queries it got and the most in flight.
type upstream struct {
	addr               string
	delay              time.Duration
	queries, now, most atomic.Int64
}

func startUpstream(t *testing.T, delay time.Duration) *upstream {
	t.Helper()
	u := &upstream{delay: delay}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		n := u.now.Add(1)
		defer u.now.Add(-1)
		for m := u.most.Load(); n > m && !u.most.CompareAndSwap(m, n); m = u.most.Load() {
		}
		time.Sleep(u.delay)
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: answerAddr.AsSlice()})
		}
		w.WriteMsg(m)
	})
	us, ts := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
	return u
}

// startResolver serves cfg (with the test's chutes) on 127.0.0.1 and
// returns its address.
func startResolver(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Lookup = func(a netip.Addr) (Client, bool) {
		switch a {
		case wanChute:
			return Client{Name: "wan", WAN: true, Names: map[string][]netip.Addr{"wan": {wanChute}, "friend": {friendAddr}}}, true
		case lanChute:
			return Client{Name: "lan", Names: map[string][]netip.Addr{"lan": {lanChute}}}, true
		}
		return Client{}, false
	}
	cfg.Local = map[string][]netip.Addr{"Gateway.Paradrop": {gwAddr}}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(pc, l); close(done) }()
	t.Cleanup(func() { s.Shutdown(); <-done })
	time.Sleep(50 * time.Millisecond) // both servers started
	return pc.LocalAddr().String()
}

// ask queries server for name's A record from the chute at src.
func ask(t *testing.T, netw string, src netip.Addr, server, name string, timeout time.Duration) (*dns.Msg, error) {
	t.Helper()
	d := &net.Dialer{Timeout: timeout}
	if netw == "tcp" {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	} else {
		d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
	}
	c := &dns.Client{Net: netw, Dialer: d, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, server)
	return r, err
}

func answerOf(r *dns.Msg) netip.Addr {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A)
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func TestWANChuteResolves(t *testing.T) {
	up := startUpstream(t, 0)
	srv := startResolver(t, Config{Upstreams: []string{up.addr}})
	for _, netw := range []string{"udp", "tcp"} {
		r, err := ask(t, netw, wanChute, srv, "cloud.example", 3*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", netw, err)
		}
		if r.Rcode != dns.RcodeSuccess || answerOf(r) != answerAddr {
			t.Errorf("%s: wan chute asking for cloud.example got %s", netw, r)
		}
	}
	if up.queries.Load() != 2 {
		t.Errorf("upstream got %d queries, want 2", up.queries.Load())
	}
}

func TestChuteWithoutWANRefused(t *testing.T) {
	up := startUpstream(t, 0)
	srv := startResolver(t, Config{Upstreams: []string{up.addr}})
	r, err := ask(t, "udp", lanChute, srv, "cloud.example", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("chute without wan asking for cloud.example got %s, want REFUSED", r)
	}
	// The gateway's own names it still gets.
	if r, err = ask(t, "udp", lanChute, srv, "gateway.paradrop", 3*time.Second); err != nil {
		t.Fatal(err)
	} else if r.Rcode != dns.RcodeSuccess || answerOf(r) != gwAddr {
		t.Errorf("chute without wan asking for the gateway got %s, want %s", r, gwAddr)
	}
	// An address that is no chute gets nothing.
	if r, err = ask(t, "udp", netip.MustParseAddr("127.0.0.9"), srv, "gateway.paradrop", 3*time.Second); err != nil {
		t.Fatal(err)
	} else if r.Rcode != dns.RcodeRefused {
		t.Errorf("a stranger got %s, want REFUSED", r)
	}
	if up.queries.Load() != 0 {
		t.Errorf("upstream got %d queries from chutes without wan, want 0", up.queries.Load())
	}
}

// A chute resolves its own name and its peers', whatever their case; any
// other chute's name is a name that does not exist, as a name no chute
// has, and neither is sent upstream (which answers everything here), so a
// chute learns nothing of which other chutes run.
func TestChuteNames(t *testing.T) {
	up := startUpstream(t, 0)
	srv := startResolver(t, Config{Upstreams: []string{up.addr}})
	for _, c := range []struct {
		from  netip.Addr
		name  string
		rcode int
		want  netip.Addr
	}{
		{wanChute, "wan", dns.RcodeSuccess, wanChute},
		{wanChute, "Friend", dns.RcodeSuccess, friendAddr},
		{lanChute, "lan", dns.RcodeSuccess, lanChute},
		{wanChute, "lan", dns.RcodeNameError, netip.Addr{}},    // a chute, not its peer
		{wanChute, "nosuch", dns.RcodeNameError, netip.Addr{}}, // no chute
		{lanChute, "wan", dns.RcodeNameError, netip.Addr{}},
		{lanChute, "friend", dns.RcodeNameError, netip.Addr{}}, // wan's peer, not lan's
		{wanChute, "lan.paradrop", dns.RcodeNameError, netip.Addr{}},
		{wanChute, "other.gateway.paradrop", dns.RcodeNameError, netip.Addr{}},
	} {
		for _, netw := range []string{"udp", "tcp"} {
			r, err := ask(t, netw, c.from, srv, c.name, 3*time.Second)
			if err != nil {
				t.Fatalf("%s asking for %s over %s: %v", c.from, c.name, netw, err)
			}
			if r.Rcode != c.rcode || answerOf(r) != c.want {
				t.Errorf("%s asking for %s over %s: %s, want %s %v", c.from, c.name, netw, r, dns.RcodeToString[c.rcode], c.want)
			}
		}
	}
	if up.queries.Load() != 0 {
		t.Errorf("upstream got %d queries for chute names, want 0", up.queries.Load())
	}
}

// A flooding chute gets its burst and rate through and no more, and
// another chute keeps resolving meanwhile.
func TestFloodBounded(t *testing.T) {
	up := startUpstream(t, 0)
	srv := startResolver(t, Config{Upstreams: []string{up.addr}, Rate: 10, Burst: 20, InFlight: 64})
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: wanChute.AsSlice()}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(srv)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	m := new(dns.Msg)
	m.SetQuestion("flood.example.", dns.TypeA)
	for i := range 2000 {
		m.Id = uint16(i)
		b, _ := m.Pack()
		conn.Write(b)
	}
	elapsed := time.Since(start)
	// Another chute, while the flood is being answered: it may lose a
	// datagram to the full socket queue, and asks again as resolvers do.
	var r *dns.Msg
	for range 3 {
		if r, err = ask(t, "udp", lanChute, srv, "gateway.paradrop", time.Second); err == nil {
			break
		}
	}
	if err != nil || answerOf(r) != gwAddr {
		t.Errorf("other chute during the flood: %v, %v", r, err)
	}
	time.Sleep(300 * time.Millisecond)
	elapsed += 300 * time.Millisecond
	allowed := int64(20 + 10*elapsed.Seconds() + 1)
	got := up.queries.Load()
	t.Logf("2000 queries in %v: %d forwarded (bound %d)", elapsed, got, allowed)
	if got > allowed {
		t.Errorf("flood of 2000 queries: %d forwarded upstream, want at most %d (burst 20 + 10/s)", got, allowed)
	}
	if got < 15 {
		t.Errorf("flood: only %d forwarded, want the burst", got)
	}
}

// A slow upstream: the chute's queries in flight are bounded, and each
// gets SERVFAIL after the timeout rather than waiting forever.
func TestInFlightBounded(t *testing.T) {
	up := startUpstream(t, 2*time.Second)
	srv := startResolver(t, Config{Upstreams: []string{up.addr}, InFlight: 3, Timeout: 500 * time.Millisecond})
	type res struct {
		r   *dns.Msg
		err error
	}
	results := make(chan res, 10)
	for range 10 {
		go func() {
			r, err := ask(t, "udp", wanChute, srv, "slow.example", 3*time.Second)
			results <- res{r, err}
		}()
	}
	for range 10 {
		x := <-results
		if x.err != nil {
			t.Errorf("query: %v", x.err)
		} else if x.r.Rcode != dns.RcodeServerFailure {
			t.Errorf("query to a slow upstream got %s, want SERVFAIL", dns.RcodeToString[x.r.Rcode])
		}
	}
	if m := up.most.Load(); m > 3 {
		t.Errorf("upstream saw %d of the chute's queries at once, want at most 3", m)
	}
}

func TestUpstreamsAndResolvConf(t *testing.T) {
	p := t.TempDir() + "/resolv.conf"
	if err := writeFile(p, "nameserver 127.0.0.53\nnameserver 198.51.100.53\nsearch lan\n"); err != nil {
		t.Fatal(err)
	}
	ups, err := Upstreams(p)
	if err != nil || len(ups) != 2 || ups[0] != "127.0.0.53:53" || ups[1] != "198.51.100.53:53" {
		t.Errorf("Upstreams = %q, %v", ups, err)
	}
	if got := string(ResolvConf(gwAddr)); got == "" || !contains(got, "nameserver 10.131.0.1\n") {
		t.Errorf("ResolvConf = %q", got)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
