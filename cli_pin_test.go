package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"paradrop/tlscert"
)

// tlsGateway is the fixture's API served over HTTPS on loopback, with a
// certificate the test can replace.
type tlsGateway struct {
	srv      *httptest.Server
	cert     atomic.Pointer[tlscert.Cert]
	requests atomic.Int32 // that reached the handler
}

func newTLSGateway(t *testing.T, f *cliFixture) *tlsGateway {
	t.Helper()
	g := &tlsGateway{}
	g.replaceCert(t)
	h := f.srv.Config.Handler
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	// Consulted before httptest's own certificate.
	g.srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{g.cert.Load().TLS}}, nil
	}}
	g.srv.StartTLS()
	t.Cleanup(g.srv.Close)
	f.vars["PARADROP_SERVER"] = g.srv.URL
	f.vars["HOME"] = t.TempDir()
	return g
}

// replaceCert makes a new self-signed certificate, as a gateway whose data
// directory was wiped would.
func (g *tlsGateway) replaceCert(t *testing.T) *tlscert.Cert {
	t.Helper()
	c, err := tlscert.EnsureSelfSigned(t.TempDir(), tlscert.Names{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g.cert.Store(c)
	return c
}

func TestCLIPinsOnFirstUse(t *testing.T) {
	f := newCLIFixture(t)
	g := newTLSGateway(t, f)
	first := g.cert.Load().Fingerprint
	known := filepath.Join(f.vars["HOME"], ".config", "paradrop", "known_gateways")
	info := func(args ...string) int {
		return f.run(func(env *cliEnv, a []string) int { return runCLI(env, "info", cmdGatewayInfo, a) }, args...)
	}

	if rc := info(); rc != 0 {
		t.Fatalf("first use: rc %d: %s", rc, f.stderr)
	}
	if !strings.Contains(f.stderr.String(), "pinned its certificate, SHA-256 fingerprint "+first.String()) {
		t.Errorf("first use says nothing of the pin: %q", f.stderr)
	}
	if !strings.Contains(f.stdout.String(), first.String()) || !strings.Contains(f.stdout.String(), g.srv.URL) {
		t.Errorf("info does not show the API URL and the fingerprint %s:\n%s", first, f.stdout)
	}
	if raw, err := os.ReadFile(known); err != nil || !strings.Contains(string(raw), first.String()) {
		t.Fatalf("known gateways: %q %v", raw, err)
	}
	if rc := info(); rc != 0 || f.stderr.String() != "" {
		t.Errorf("second use: rc %d, stderr %q", rc, f.stderr)
	}

	// The certificate changes: refused before the token is sent.
	second := g.replaceCert(t).Fingerprint
	before := g.requests.Load()
	if rc := info(); rc != 1 {
		t.Fatalf("changed certificate: rc %d", rc)
	}
	f.oneLine(t, "paradrop: info: daemon at "+g.srv.URL+": gateway 127.0.0.1:")
	for _, want := range []string{second.String(), first.String(), known, "--fingerprint " + second.String()} {
		if !strings.Contains(f.stderr.String(), want) {
			t.Errorf("refusal does not say %q: %s", want, f.stderr)
		}
	}
	if n := g.requests.Load() - before; n != 0 {
		t.Errorf("%d requests reached the gateway with the changed certificate", n)
	}
	if rc := info("--fingerprint", first.String()); rc != 1 {
		t.Errorf("--fingerprint of the old certificate: rc %d", rc)
	}
	// Accepted explicitly, then pinned.
	if rc := info("--fingerprint", strings.ToLower(strings.ReplaceAll(second.String(), ":", ""))); rc != 0 {
		t.Fatalf("--fingerprint of the new certificate: rc %d: %s", rc, f.stderr)
	}
	if rc := info(); rc != 0 {
		t.Errorf("after accepting the new certificate: rc %d: %s", rc, f.stderr)
	}
}

func TestCLIPlainHTTPOnlyOnLoopback(t *testing.T) {
	f := newCLIFixture(t)
	run := func(args ...string) int { return f.run(chuteMain, args...) }
	f.vars["PARADROP_SERVER"] = "http://192.0.2.1:8080" // TEST-NET: usage error before any packet
	if rc := run("list"); rc != 2 {
		t.Errorf("http to a LAN address: rc %d", rc)
	}
	f.oneLine(t, `paradrop: list: server "http://192.0.2.1:8080": a gateway off loopback speaks HTTPS only: use https://192.0.2.1:8080`)

	f.vars["PARADROP_SERVER"] = f.srv.URL
	if rc := run("list", "--fingerprint", tlscert.Fingerprint{}.String()); rc != 2 {
		t.Errorf("--fingerprint over plain HTTP: rc %d", rc)
	}
	if rc := run("list"); rc != 0 {
		t.Errorf("loopback plain HTTP: rc %d: %s", rc, f.stderr)
	}

	g := newTLSGateway(t, f)
	f.vars["PARADROP_SERVER"] = strings.Replace(g.srv.URL, "https:", "http:", 1)
	if rc := run("list"); rc != 1 {
		t.Errorf("http to an HTTPS listener on loopback: rc %d", rc)
	}
	f.oneLine(t, "paradrop: list: daemon at "+f.vars["PARADROP_SERVER"]+" serves HTTPS there: use --server "+g.srv.URL+"\n")
	f.vars["PARADROP_SERVER"] = g.srv.URL
	delete(f.vars, "HOME")
	if rc := run("list"); rc != 1 {
		t.Errorf("no HOME to pin in: rc %d", rc)
	}
	f.oneLine(t, "paradrop: list: daemon at "+g.srv.URL+": neither $HOME")
	if rc := run("list", "--fingerprint", g.cert.Load().Fingerprint.String()); rc != 0 {
		t.Errorf("no HOME but --fingerprint: rc %d: %s", rc, f.stderr)
	}
}
