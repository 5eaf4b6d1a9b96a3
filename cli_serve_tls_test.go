package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A certificate is made only for listeners that serve HTTPS, and names
// their addresses; loopback-only daemons make no key.
func TestAPICertificate(t *testing.T) {
	const lan = "198.51.100.77:0" // TEST-NET-2, bound with IP_FREEBIND; nothing is sent
	listen := func(addrs ...string) []net.Listener {
		lns, err := listenAPI(context.Background(), addrs, lan)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, ln := range lns {
				ln.Close()
			}
		})
		return lns
	}
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, f) }

	data := t.TempDir()
	loop := listen("127.0.0.1:0")
	if servesTLS(loop[0]) {
		t.Error("loopback listener serves TLS")
	}
	if c, err := apiCertificate(tlsOptions{}, data, loop, logf); c != nil || err != nil {
		t.Errorf("loopback only: %v %v, want no certificate", c, err)
	}
	if _, err := os.Stat(filepath.Join(data, "tls")); err == nil {
		t.Error("loopback only: a key was made")
	}

	both := listen("127.0.0.1:0", lan)
	if !servesTLS(both[1]) {
		t.Error("LAN listener does not serve TLS")
	}
	c, err := apiCertificate(tlsOptions{}, data, both, logf)
	if err != nil || c == nil || !c.Made {
		t.Fatalf("LAN listener: %v %v", c, err)
	}
	if err := c.Leaf.VerifyHostname("198.51.100.77"); err != nil {
		t.Errorf("certificate does not name the LAN address: %v", err)
	}
	if err := c.Leaf.VerifyHostname("127.0.0.1"); err == nil {
		t.Error("certificate names loopback, which is served plain")
	}

	// The operator's files: checked even when not served.
	own := tlsOptions{cert: c.Path, key: filepath.Join(data, "tls", "key.pem")}
	if got, err := apiCertificate(own, t.TempDir(), loop, logf); got != nil || err != nil {
		t.Errorf("--tls-cert with loopback only: %v %v, want nothing served", got, err)
	}
	if _, err := apiCertificate(tlsOptions{cert: c.Path, key: c.Path}, t.TempDir(), loop, logf); err == nil {
		t.Error("--tls-key that is no key: accepted")
	}
	if got, err := apiCertificate(own, t.TempDir(), both, logf); err != nil || got.Fingerprint != c.Fingerprint || got.Made {
		t.Errorf("--tls-cert: %v %v", got, err)
	}
	if err := (tlsOptions{cert: "x"}).check(); err == nil {
		t.Error("--tls-cert without --tls-key accepted")
	}
}
