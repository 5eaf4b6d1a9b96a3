// Package chutedns is the resolver chutes use: a small forwarding DNS
// server on the gateway's address in the chute subnet, port 53, UDP and
// TCP. It answers the names the gateway knows itself, and to each chute
// its own name and its mutual peers' (single labels, as chutes are named):
// a chute does not learn by name which other chutes run, as any other
// single label, or name under "paradrop.", is a name that does not exist
// and is never sent upstream. It forwards the rest to the host's upstream
// resolvers for chutes with WAN access, and refuses it to the others: a
// chute without `wan` learns no outside names (a resolver that forwards
// for it would be a channel out of its sandbox).
//
// Chutes are hostile, so every query is bounded: a rate per chute (the
// excess is dropped, not answered), queries in flight per chute and in
// all, the size of a message (UDP answers are truncated to what the
// client announced, 512 bytes without EDNS), TCP connections, and the
// time an upstream may take.
package chutedns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"
)

// Client is what the resolver knows about a chute, found by its address.
type Client struct {
	Name string
	WAN  bool // the chute may reach the WAN, so its queries are forwarded
	// Names are the chute names it may resolve, with their addresses: its
	// own and its mutual peers'.
	Names map[string][]netip.Addr
}

// localZone is the name under which the gateway's own names live: names
// in it, and single labels (chute names), are answered here or not at all.
const localZone = "paradrop."

// Config is the resolver's configuration. The zero values of the bounds
// are the defaults below.
type Config struct {
	// Upstreams are the resolvers queries are forwarded to, host:port,
	// tried in order (see Upstreams for the host's).
	Upstreams []string
	// Lookup finds the chute sending from an address; queries from
	// addresses it does not know are refused.
	Lookup func(netip.Addr) (Client, bool)
	// Local are the names the gateway answers itself (any case, with or
	// without the final dot), for every chute.
	Local map[string][]netip.Addr
	// Dial connects to an upstream (default: net.Dialer in the caller's
	// network namespace); the gateway's may be another.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	Rate             rate.Limit    // queries per second per chute (default 20)
	Burst            int           // per chute (default 40)
	InFlight         int           // forwarded queries in flight per chute (default 8)
	TotalInFlight    int           // in all (default 64)
	TCPConns         int           // open TCP connections in all (default 64)
	Timeout          time.Duration // for one upstream's answer (default 2s)
	MaxUDPAnswerSize int           // cap on the EDNS size a client may announce (default 1232)
}

// Defaults of Config's bounds.
const (
	DefaultRate          = 20
	DefaultBurst         = 40
	DefaultInFlight      = 8
	DefaultTotalInFlight = 64
	DefaultTCPConns      = 64
	DefaultTimeout       = 2 * time.Second
	DefaultMaxUDPSize    = 1232
)

// Server is a running resolver.
type Server struct {
	cfg   Config
	local map[string][]netip.Addr
	total chan struct{}

	mu      sync.Mutex
	clients map[netip.Addr]*clientState

	udp, tcp *dns.Server
}

type clientState struct {
	lim      *rate.Limiter
	inFlight chan struct{}
	seen     time.Time
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Server, error) {
	if cfg.Lookup == nil {
		return nil, errors.New("chutedns: no Lookup")
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.TotalInFlight == 0 {
		cfg.TotalInFlight = DefaultTotalInFlight
	}
	if cfg.TCPConns == 0 {
		cfg.TCPConns = DefaultTCPConns
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxUDPAnswerSize == 0 {
		cfg.MaxUDPAnswerSize = DefaultMaxUDPSize
	}
	s := &Server{cfg: cfg, local: map[string][]netip.Addr{}, total: make(chan struct{}, cfg.TotalInFlight),
		clients: map[netip.Addr]*clientState{}}
	for name, addrs := range cfg.Local {
		s.local[dns.CanonicalName(name)] = addrs
	}
	return s, nil
}

// Upstreams reads the nameservers of a resolv.conf (the host's is
// /etc/resolv.conf) as host:port.
func Upstreams(resolvConf string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, err
	}
	var ups []string
	for _, s := range cc.Servers {
		ups = append(ups, net.JoinHostPort(s, cc.Port))
	}
	if len(ups) == 0 {
		return nil, errors.New("chutedns: no nameserver in " + resolvConf)
	}
	return ups, nil
}

// ResolvConf is the /etc/resolv.conf of a chute whose gateway is gw.
func ResolvConf(gw netip.Addr) []byte {
	return []byte("# written by paradrop: the gateway resolves names for this chute\nnameserver " + gw.String() + "\noptions timeout:2 attempts:2\n")
}

// Serve answers on udp and tcp (either may be nil) until Shutdown.
func (s *Server) Serve(udp net.PacketConn, tcp net.Listener) error {
	errs := make(chan error, 2)
	n := 0
	if udp != nil {
		s.udp = &dns.Server{PacketConn: udp, Handler: s, UDPSize: 4096}
		n++
		go func() { errs <- s.udp.ActivateAndServe() }()
	}
	if tcp != nil {
		s.tcp = &dns.Server{Listener: netutil.LimitListener(tcp, s.cfg.TCPConns), Handler: s,
			ReadTimeout: s.cfg.Timeout, WriteTimeout: s.cfg.Timeout, MaxTCPQueries: 16,
			IdleTimeout: func() time.Duration { return 5 * time.Second }}
		n++
		go func() { errs <- s.tcp.ActivateAndServe() }()
	}
	var err error
	for range n {
		err = errors.Join(err, <-errs)
	}
	return err
}

// Shutdown stops serving.
func (s *Server) Shutdown() {
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			srv.Shutdown()
		}
	}
}

// client is the bookkeeping of the chute at a, created on its first
// query; states of chutes silent for a minute are forgotten.
func (s *Server) client(a netip.Addr) *clientState {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	c := s.clients[a]
	if c == nil {
		if len(s.clients) > 1024 {
			for k, v := range s.clients {
				if now.Sub(v.seen) > time.Minute && len(v.inFlight) == 0 {
					delete(s.clients, k)
				}
			}
		}
		c = &clientState{lim: rate.NewLimiter(s.cfg.Rate, s.cfg.Burst), inFlight: make(chan struct{}, s.cfg.InFlight)}
		s.clients[a] = c
	}
	c.seen = now
	return c
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	ap, err := netip.ParseAddrPort(w.RemoteAddr().String())
	if err != nil {
		return
	}
	from := ap.Addr().Unmap()
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	who, known := s.cfg.Lookup(from)
	if !known {
		s.reply(w, r, overTCP, dns.RcodeRefused)
		return
	}
	st := s.client(from)
	if !st.lim.Allow() {
		return // dropped: answering a flood is what the flood wants
	}
	if r.Opcode != dns.OpcodeQuery {
		s.reply(w, r, overTCP, dns.RcodeNotImplemented)
		return
	}
	if len(r.Question) != 1 || r.Response {
		s.reply(w, r, overTCP, dns.RcodeFormatError)
		return
	}
	q := r.Question[0]
	name := dns.CanonicalName(q.Name)
	if addrs, ok := s.local[name]; ok {
		s.answerLocal(w, r, overTCP, q, addrs)
		return
	}
	if dns.CountLabel(name) <= 1 || dns.IsSubDomain(localZone, name) {
		// A chute's name, or the gateway's zone: what this chute may know
		// of it, else no such name, whether another chute has it or not.
		for n, addrs := range who.Names {
			if dns.CanonicalName(n) == name {
				s.answerLocal(w, r, overTCP, q, addrs)
				return
			}
		}
		s.reply(w, r, overTCP, dns.RcodeNameError)
		return
	}
	if !who.WAN || len(s.cfg.Upstreams) == 0 {
		s.reply(w, r, overTCP, dns.RcodeRefused)
		return
	}
	select {
	case st.inFlight <- struct{}{}:
		defer func() { <-st.inFlight }()
	default:
		s.reply(w, r, overTCP, dns.RcodeServerFailure)
		return
	}
	select {
	case s.total <- struct{}{}:
		defer func() { <-s.total }()
	default:
		s.reply(w, r, overTCP, dns.RcodeServerFailure)
		return
	}
	s.forward(w, r, overTCP)
}

// forward asks the upstreams, over the transport the chute used (a
// truncated UDP answer tells the chute to come back over TCP).
func (s *Server) forward(w dns.ResponseWriter, r *dns.Msg, overTCP bool) {
	out := new(dns.Msg)
	out.SetQuestion(r.Question[0].Name, r.Question[0].Qtype)
	out.Question[0].Qclass = r.Question[0].Qclass
	out.RecursionDesired = r.RecursionDesired
	out.CheckingDisabled = r.CheckingDisabled
	netw := "udp"
	if overTCP {
		netw = "tcp"
	}
	udpSize := uint16(dns.MinMsgSize)
	if o := r.IsEdns0(); o != nil {
		udpSize = min(max(o.UDPSize(), dns.MinMsgSize), uint16(s.cfg.MaxUDPAnswerSize))
		out.SetEdns0(udpSize, o.Do())
	}
	c := &dns.Client{Net: netw, Timeout: s.cfg.Timeout, UDPSize: udpSize}
	for _, up := range s.cfg.Upstreams {
		ans, err := s.exchange(c, out, up)
		if err != nil || ans == nil {
			continue
		}
		ans.Id = r.Id
		ans.Question = r.Question
		if !overTCP {
			ans.Truncate(int(udpSize))
		}
		w.WriteMsg(ans)
		return
	}
	s.reply(w, r, overTCP, dns.RcodeServerFailure)
}

// exchange asks one upstream, within the timeout.
func (s *Server) exchange(c *dns.Client, m *dns.Msg, up string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	conn, err := s.cfg.Dial(ctx, c.Net, up)
	if err != nil {
		return nil, err
	}
	co := &dns.Conn{Conn: conn, UDPSize: c.UDPSize}
	defer co.Close()
	ans, _, err := c.ExchangeWithConnContext(ctx, m, co)
	return ans, err
}

// answerLocal answers a name the gateway knows: its addresses of the
// asked family, or no data.
func (s *Server) answerLocal(w dns.ResponseWriter, r *dns.Msg, overTCP bool, q dns.Question, addrs []netip.Addr) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	if !overTCP {
		m.Truncate(dns.MinMsgSize)
	}
	w.WriteMsg(m)
}

func (s *Server) reply(w dns.ResponseWriter, r *dns.Msg, overTCP bool, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = rcode != dns.RcodeRefused
	m.Authoritative = rcode == dns.RcodeNameError
	if !overTCP {
		m.Truncate(dns.MinMsgSize)
	}
	w.WriteMsg(m)
}
