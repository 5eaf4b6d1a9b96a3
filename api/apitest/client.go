package apitest

import (
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// Clients for hostile tests of a real server on loopback: each client can
// come from an address of its own (127.0.0.2, 127.0.0.3, ...), as distinct
// hosts on a LAN would.

// DialFrom connects to addr from the loopback address ip. The connection
// is closed when the test ends.
func DialFrom(t testing.TB, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Health asks the server at addr for /api/v1/health on a new connection
// and fails t unless it answers 200 within 5 s.
func Health(t testing.TB, addr string) {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + "/api/v1/health")
	if err != nil {
		t.Fatalf("health from a fresh client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health from a fresh client: %d", resp.StatusCode)
	}
}

// OpenFDs counts the descriptors this process has open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
