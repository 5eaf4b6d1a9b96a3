package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"paradrop/api/apitest"
	"paradrop/chute"
)

// liveServer is the API behind a real Server on a loopback port.
type liveServer struct {
	addr  string
	token string
	api   *server
	srv   *Server
	fake  *apitest.Fake
}

func newLiveServer(t *testing.T, lim Limits) *liveServer {
	t.Helper()
	db, tok := tokenDB(t)
	fake := apitest.New()
	h := New(Config{Chutes: fake, DB: db, Version: "test", Started: time.Now(),
		MaxUpload: 1 << 20, Limits: lim, Logf: t.Logf})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(context.Background(), h, lim)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &liveServer{addr: ln.Addr().String(), token: tok, api: h.(*server), srv: srv, fake: fake}
}

func (s *liveServer) dialFrom(t *testing.T, ip string) net.Conn {
	return apitest.DialFrom(t, ip, s.addr)
}

func (s *liveServer) health(t *testing.T) {
	t.Helper()
	apitest.Health(t, s.addr)
}

// closedByServer reports whether the server has closed c (EOF or reset
// within wait), after reading whatever it sent.
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// waitConns waits until the server counts n open connections.
func (s *liveServer) waitConns(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if all, _ := s.srv.conns.count(""); all == n {
			return
		}
		if time.Now().After(deadline) {
			all, _ := s.srv.conns.count("")
			t.Fatalf("%d connections open, want %d", all, n)
		}
	}
}

// clientIPs returns n loopback addresses from 127.0.0.2 on.
func clientIPs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	return out
}

// Idle keep-alive connections without a token, from many clients, cannot
// hold more descriptors than the cap, and a fresh client still gets in.
func TestIdleConnectionsBounded(t *testing.T) {
	lim := Limits{MaxConns: 16, MaxConnsPerClient: 4, IdleTimeout: time.Minute, HeaderTimeout: time.Minute}
	s := newLiveServer(t, lim)
	base := apitest.OpenFDs(t)
	held := 0
	for _, ip := range clientIPs(10) {
		for range 8 {
			c := s.dialFrom(t, ip)
			fmt.Fprintf(c, "GET /api/v1/chutes HTTP/1.1\r\nHost: gw\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				resp.Body.Close()
			}
			held++
		}
	}
	time.Sleep(100 * time.Millisecond)
	if server := apitest.OpenFDs(t) - base - held; server > lim.MaxConns+4 {
		t.Errorf("%d idle connections from 10 clients: the server holds %d descriptors, want at most %d", held, server, lim.MaxConns+4)
	}
	if all, _ := s.srv.conns.count(""); all > lim.MaxConns {
		t.Errorf("%d connections counted open, cap %d", all, lim.MaxConns)
	}
	s.health(t)
}

// A client over its own cap is closed at once, not queued.
func TestConnectionsPerClient(t *testing.T) {
	s := newLiveServer(t, Limits{MaxConns: 100, MaxConnsPerClient: 3})
	var conns []net.Conn
	for range 3 {
		conns = append(conns, s.dialFrom(t, "127.0.0.2"))
	}
	extra := s.dialFrom(t, "127.0.0.2")
	if !closedByServer(extra, 2*time.Second) {
		t.Error("a 4th connection from a client capped at 3 was kept open")
	}
	for _, c := range conns {
		fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: gw\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("a connection within the cap: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	s.health(t) // another client is not affected
}

// Slowloris: headers sent a byte at a time are cut off by the header
// timeout, and the descriptors come back.
func TestSlowHeadersDropped(t *testing.T) {
	lim := Limits{HeaderTimeout: 300 * time.Millisecond, MaxConns: 100, MaxConnsPerClient: 10}
	s := newLiveServer(t, lim)
	base := apitest.OpenFDs(t)
	var conns []net.Conn
	for _, ip := range clientIPs(4) {
		for range 5 {
			c := s.dialFrom(t, ip)
			fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\n")
			conns = append(conns, c)
		}
	}
	s.waitConns(t, len(conns))
	deadline := time.Now().Add(3 * time.Second)
	for tick := 0; time.Now().Before(deadline); tick++ {
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			fmt.Fprintf(c, "X-%d: a\r\n", tick)
		}
		if all, _ := s.srv.conns.count(""); all == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if all, _ := s.srv.conns.count(""); all != 0 {
		t.Fatalf("%d slow-header connections still open after 3s with a 300ms header timeout", all)
	}
	for i, c := range conns {
		if !closedByServer(c, time.Second) {
			t.Fatalf("slow-header connection %d not closed", i)
		}
	}
	if server := apitest.OpenFDs(t) - base - len(conns); server > 2 {
		t.Errorf("server still holds %d descriptors after dropping slow-header clients", server)
	}
	s.health(t)
}

// uploadStart sends the headers of a package upload and the first bytes
// of its body, then leaves the connection for the caller to stall.
func (s *liveServer) uploadStart(t *testing.T, ip string, length int) net.Conn {
	t.Helper()
	c := s.dialFrom(t, ip)
	fmt.Fprintf(c, "POST /api/v1/chutes HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\ndb 1.0\n", s.token, length)
	return c
}

func readStatus(t *testing.T, c net.Conn, wait time.Duration) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within %v: %v", wait, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// A body that stops coming is dropped after the stall timeout, while a
// slow one that keeps coming finishes, however much longer it takes.
func TestStalledBodyDropped(t *testing.T) {
	// A window long enough that a loaded machine's scheduling delays do
	// not starve the slow sender below.
	lim := Limits{StallTimeout: time.Second, MinRate: 1000}
	s := newLiveServer(t, lim)

	start := time.Now()
	c := s.uploadStart(t, "127.0.0.2", 100000)
	resp, body := readStatus(t, c, 5*time.Second)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled upload: %d %s, want 408", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stalled upload dropped after %v, stall timeout %v", d, lim.StallTimeout)
	}
	if !closedByServer(c, 2*time.Second) {
		t.Error("connection of a stalled upload kept open")
	}

	// 2000 bytes every 100ms is 20x the minimum rate; it lasts 3 windows.
	const chunk, chunks = 2000, 30
	c = s.uploadStart(t, "127.0.0.3", len("db 1.0\n")+chunk*chunks)
	for range chunks {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Write(make([]byte, chunk)); err != nil {
			t.Fatalf("slow upload cut off: %v", err)
		}
	}
	if resp, body := readStatus(t, c, 3*time.Second); resp.StatusCode != http.StatusAccepted {
		t.Errorf("slow upload that kept coming: %d %s, want 202", resp.StatusCode, body)
	}

	// A trickle under the rate is dropped even though it never stops.
	c = s.uploadStart(t, "127.0.0.4", 100000)
	go func() {
		for range 80 {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	if resp, body := readStatus(t, c, 5*time.Second); resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("trickling upload: %d %s, want 408", resp.StatusCode, body)
	}
}

// Uploads beyond a client's cap get 429, beyond the gateway's 503, both
// with Retry-After and a JSON error; ending one frees its slot.
func TestUploadCaps(t *testing.T) {
	lim := Limits{MaxUploads: 3, MaxUploadsPerClient: 2, StallTimeout: time.Minute}
	s := newLiveServer(t, lim)
	waitUploads := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			s.api.uploads.mu.Lock()
			all := s.api.uploads.all
			s.api.uploads.mu.Unlock()
			if all == n {
				return
			}
		}
		t.Fatalf("uploads in progress never reached %d", n)
	}
	first := s.uploadStart(t, "127.0.0.2", 100000)
	s.uploadStart(t, "127.0.0.2", 100000)
	waitUploads(2)
	resp, body := readStatus(t, s.uploadStart(t, "127.0.0.2", 100000), 2*time.Second)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("3rd upload from one client: %d %v, want 429 with Retry-After", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, `"error"`) {
		t.Errorf("429 body %q is not a JSON error", body)
	}
	s.uploadStart(t, "127.0.0.3", 100000)
	waitUploads(3)
	resp, body = readStatus(t, s.uploadStart(t, "127.0.0.4", 100000), 2*time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("upload past the gateway's cap: %d %v, want 503 with Retry-After", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, `"error"`) {
		t.Errorf("503 body %q is not a JSON error", body)
	}
	first.Close()
	waitUploads(2)
	s.health(t)
}

// A keep-alive connection with no further request is closed after the
// idle timeout.
func TestIdleTimeout(t *testing.T) {
	s := newLiveServer(t, Limits{IdleTimeout: 300 * time.Millisecond})
	c := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: gw\r\n\r\n")
	resp, _ := readStatus(t, c, 2*time.Second)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	start := time.Now()
	if !closedByServer(c, 3*time.Second) {
		t.Fatal("idle keep-alive connection still open 3s later, idle timeout 300ms")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("idle connection closed after %v, before the idle timeout", d)
	}
}

// The progress rule is about clients that stall, not requests that take
// long: a followed log quiet for several stall timeouts still gets its next
// line, and an upload whose change is waited for past them gets its answer.
func TestLongRequestsOutliveStallTimeout(t *testing.T) {
	const stall = 200 * time.Millisecond
	s := newLiveServer(t, Limits{StallTimeout: stall})
	s.fake.Add(chute.Info{Name: "web", Version: "1.0", State: chute.Running, Desired: chute.Running})

	c := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(c, "GET /api/v1/chutes/web/logs?follow=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n\r\n", s.token)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("follow: %v %v", resp, err)
	}
	time.Sleep(3 * stall)
	s.fake.AppendLog("web", "after a quiet while")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "after a quiet while\n" {
		t.Fatalf("followed log after %v of quiet: %q %v", 3*stall, line, err)
	}

	s.fake.Hold = true
	c = s.dialFrom(t, "127.0.0.3")
	fmt.Fprintf(c, "POST /api/v1/chutes?wait=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: 7\r\n\r\ndb 1.0\n", s.token)
	time.Sleep(3 * stall)
	for _, ch := range s.fake.Changes() {
		if ch.Chute == "db" {
			s.fake.Finish(ch.ID, "")
		}
	}
	if resp, body := readStatus(t, c, 3*time.Second); resp.StatusCode != http.StatusOK {
		t.Errorf("install waited for past the stall timeout: %d %s, want 200", resp.StatusCode, body)
	}
}

// Neither headers nor a policy body can make the daemon hold megabytes.
func TestSmallRequestsStaySmall(t *testing.T) {
	s := newLiveServer(t, Limits{})
	c := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: gw\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 256<<10))
	if resp, _ := readStatus(t, c, 3*time.Second); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("256 KiB of headers: %d, want 431", resp.StatusCode)
	}
	s.fake.Add(chute.Info{Name: "web", Version: "1.0", State: chute.Running, Desired: chute.Running})
	body := `{"cpu_max": 0.5, "x": "` + strings.Repeat("a", 512<<10) + `"}`
	c = s.dialFrom(t, "127.0.0.3")
	fmt.Fprintf(c, "PUT /api/v1/chutes/web/resources HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", s.token, len(body), body)
	if resp, b := readStatus(t, c, 3*time.Second); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("512 KiB policy: %d %s, want 413", resp.StatusCode, b)
	}
}

// A body trickled at a request that does not read it (health, or any
// request without a token) cannot hold the connection once answered.
func TestIgnoredBodyDoesNotHoldConnection(t *testing.T) {
	s := newLiveServer(t, Limits{StallTimeout: time.Minute})
	for _, req := range []string{
		"GET /api/v1/health HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\nx",
		"POST /api/v1/chutes HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\nx",
	} {
		c := s.dialFrom(t, "127.0.0.2")
		fmt.Fprint(c, req)
		start := time.Now()
		resp, _ := readStatus(t, c, 5*time.Second)
		if !closedByServer(c, 5*time.Second) {
			t.Fatalf("%q: connection held", req[:20])
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q: answered %d and closed after %v, want within the 1s drain", req[:20], resp.StatusCode, d)
		}
	}
}

// A client that asks for a large answer and does not read it is dropped
// after the stall timeout instead of holding the handler and connection.
func TestStalledReaderDropped(t *testing.T) {
	s := newLiveServer(t, Limits{StallTimeout: 300 * time.Millisecond})
	s.fake.Add(chute.Info{Name: "web", Version: "1.0", State: chute.Running, Desired: chute.Running})
	line := strings.Repeat("x", 200)
	for range 50000 { // 10 MB, far more than the sockets' buffers
		s.fake.AppendLog("web", line)
	}
	c := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(c, "GET /api/v1/chutes/web/logs?tail=50000 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n\r\n", s.token)
	s.waitConns(t, 1)
	time.Sleep(100 * time.Millisecond) // the answer fills the sockets' buffers
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if all, _ := s.srv.conns.count(""); all == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a client not reading its answer still holds its connection 5s later, stall timeout 300ms")
		}
	}
}
