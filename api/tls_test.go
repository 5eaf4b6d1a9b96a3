package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/tlscert"
)

// newLiveTLSServer is newLiveServer serving HTTPS with a self-signed
// certificate.
func newLiveTLSServer(t *testing.T, lim Limits) *liveServer {
	t.Helper()
	db, tok := tokenDB(t)
	fake := apitest.New()
	h := New(Config{Chutes: fake, DB: db, Version: "test", Started: time.Now(),
		MaxUpload: 1 << 20, Limits: lim, Logf: t.Logf})
	cert, err := tlscert.EnsureSelfSigned(t.TempDir(), tlscert.Names{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(context.Background(), h, lim)
	go srv.ServeTLS(ln, cert.TLS)
	t.Cleanup(func() { srv.Close() })
	return &liveServer{addr: ln.Addr().String(), token: tok, api: h.(*server), srv: srv, fake: fake}
}

// tlsFrom makes a TLS connection from ip and completes its handshake.
func (s *liveServer) tlsFrom(t *testing.T, ip string) *tls.Conn {
	t.Helper()
	c := tls.Client(s.dialFrom(t, ip), &tls.Config{InsecureSkipVerify: true})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake from %s: %v", ip, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// Clients that open connections and never finish (or never start) their
// TLS handshake are cut at the header timeout, as slow headers are.
func TestTLSSlowHandshakeDropped(t *testing.T) {
	lim := Limits{HeaderTimeout: 300 * time.Millisecond, MaxConns: 100, MaxConnsPerClient: 10}
	s := newLiveTLSServer(t, lim)
	var conns []net.Conn
	for _, ip := range clientIPs(4) {
		for i := range 5 {
			c := s.dialFrom(t, ip)
			if i%2 == 1 {
				// The first bytes of a ClientHello record, then nothing.
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			}
			conns = append(conns, c)
		}
	}
	s.waitConns(t, len(conns))
	start := time.Now()
	for i, c := range conns {
		if !closedByServer(c, 3*time.Second) {
			t.Fatalf("connection %d with an unfinished handshake still open after %v (header timeout %v)", i, time.Since(start), lim.HeaderTimeout)
		}
	}
	s.waitConns(t, 0)
	s.tlsFrom(t, "127.0.0.9") // a fresh client still gets in
}

// The per-client cap counts TLS connections: one over it is closed before
// its handshake; those within it are served.
func TestTLSConnectionsPerClient(t *testing.T) {
	s := newLiveTLSServer(t, Limits{MaxConns: 100, MaxConnsPerClient: 3})
	var conns []*tls.Conn
	for range 3 {
		conns = append(conns, s.tlsFrom(t, "127.0.0.2"))
	}
	extra := tls.Client(s.dialFrom(t, "127.0.0.2"), &tls.Config{InsecureSkipVerify: true})
	extra.SetDeadline(time.Now().Add(2 * time.Second))
	if err := extra.Handshake(); err == nil {
		t.Error("a 4th TLS connection from a client capped at 3 completed its handshake")
	}
	for _, c := range conns {
		fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: gw\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("a TLS connection within the cap: %v %v", resp, err)
		}
		resp.Body.Close()
	}
}

// When every slot is taken, a TLS connection with a request in progress is
// not the one closed to make room: the limiter sees through the TLS layer
// to the connection's state.
func TestTLSBusyConnectionNotEvicted(t *testing.T) {
	s := newLiveTLSServer(t, Limits{MaxConns: 1, MaxConnsPerClient: 1})
	s.fake.Add(chute.Info{Name: "web", Version: "1.0", State: chute.Running, Desired: chute.Running})
	c := s.tlsFrom(t, "127.0.0.2")
	fmt.Fprintf(c, "GET /api/v1/chutes/web/logs?follow=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n\r\n", s.token)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("follow: %v %v", resp, err)
	}
	newcomer := s.dialFrom(t, "127.0.0.3")
	if !closedByServer(newcomer, 2*time.Second) {
		t.Error("a newcomer was admitted over the cap while the only slot had a request in progress")
	}
	s.fake.AppendLog("web", "still here")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "still here\n" {
		t.Fatalf("the followed log over TLS after a newcomer: %q %v (evicted?)", line, err)
	}
}

// A plain HTTP request on the HTTPS listener is answered 400 and gets
// nothing of the API.
func TestTLSRefusesPlainHTTP(t *testing.T) {
	s := newLiveTLSServer(t, Limits{})
	c := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: gw\r\n\r\n")
	resp, body := readStatus(t, c, 2*time.Second)
	if resp.StatusCode != http.StatusBadRequest || body == `{"status":"ok"}` {
		t.Errorf("plain HTTP on the HTTPS listener: %d %q, want 400", resp.StatusCode, body)
	}
}
