package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"paradrop/tlscert"
)

// The CLI talks HTTPS to every gateway but one on loopback. Gateways'
// certificates are mostly self-signed, so no CA can vouch for them: the CLI
// pins the fingerprint of the certificate it sees first (trust on first
// use, as ssh does), in known_gateways under the user's configuration
// directory, and refuses a gateway that later shows another. --fingerprint
// pins one explicitly, and is how a replaced certificate is accepted.

// knownGatewaysFile is where pins are kept: $XDG_CONFIG_HOME/paradrop, else
// ~/.config/paradrop; "" when the environment names neither.
func knownGatewaysFile(env *cliEnv) string {
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := env.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "paradrop", "known_gateways")
}

// isLoopbackHost says whether host (a URL's, without port) is this machine
// over loopback.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// gatewayPin checks the certificates of one gateway's connections.
type gatewayPin struct {
	env   *cliEnv
	addr  string                // HOST:PORT, its key in known
	known tlscert.KnownGateways // Path "" when there is nowhere to keep pins
	want  *tlscert.Fingerprint  // --fingerprint

	mu   sync.Mutex
	seen *tlscert.Fingerprint // accepted on an earlier connection of this run
}

func newGatewayPin(env *cliEnv, u *url.URL, fingerprint string) (*gatewayPin, error) {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	p := &gatewayPin{env: env, addr: net.JoinHostPort(strings.ToLower(u.Hostname()), port),
		known: tlscert.KnownGateways{Path: knownGatewaysFile(env)}}
	if fingerprint != "" {
		fp, err := tlscert.ParseFingerprint(fingerprint)
		if err != nil {
			return nil, usagef("--fingerprint: %v", err)
		}
		p.want = &fp
	}
	return p, nil
}

// transport is an HTTP transport whose TLS connections must pass verify.
func (p *gatewayPin) transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	t.TLSClientConfig = &tls.Config{
		// No CA vouches for a self-signed certificate: the pin replaces
		// the chain and name checks (VerifyConnection).
		InsecureSkipVerify: true,
		VerifyConnection:   p.verify,
		MinVersion:         tls.VersionTLS12,
	}
	return t
}

func (p *gatewayPin) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the gateway sent no certificate")
	}
	got := tlscert.Of(cs.PeerCertificates[0].Raw)
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	switch {
	case p.seen != nil:
		if *p.seen != got {
			err = fmt.Errorf("gateway %s changed its certificate during this command (SHA-256 fingerprint %s, then %s)", p.addr, *p.seen, got)
		}
	case p.want != nil:
		err = p.checkGiven(got)
	default:
		err = p.checkPinned(got)
	}
	if err == nil {
		p.seen = &got
	}
	return err
}

// checkGiven accepts got if it is --fingerprint's, and pins it.
func (p *gatewayPin) checkGiven(got tlscert.Fingerprint) error {
	if got != *p.want {
		return fmt.Errorf("gateway %s presented a certificate with SHA-256 fingerprint %s, not the one given with --fingerprint", p.addr, got)
	}
	if p.known.Path == "" {
		return nil
	}
	if pinned, ok, err := p.known.Lookup(p.addr); err == nil && ok && pinned == got {
		return nil
	}
	if err := p.known.Pin(p.addr, got); err != nil {
		return fmt.Errorf("pin gateway %s: %w", p.addr, err)
	}
	fmt.Fprintf(p.env.stderr, "paradrop: pinned gateway %s, SHA-256 fingerprint %s, in %s\n", p.addr, got, p.known.Path)
	return nil
}

// checkPinned accepts got if it is the pinned one, or pins it if there is
// none yet.
func (p *gatewayPin) checkPinned(got tlscert.Fingerprint) error {
	if p.known.Path == "" {
		return fmt.Errorf("neither $HOME nor $XDG_CONFIG_HOME is set, so gateway %s's certificate cannot be pinned: pass --fingerprint", p.addr)
	}
	pinned, ok, err := p.known.Lookup(p.addr)
	switch {
	case err != nil:
		return fmt.Errorf("pinned gateways: %w", err)
	case ok && pinned != got:
		return fmt.Errorf("gateway %s presented a certificate with SHA-256 fingerprint %s, but %s is pinned for it in %s: if its certificate was replaced on purpose, check the new fingerprint on the gateway (paradrop info, or the daemon's startup log) and run again with --fingerprint %s, or remove its line from that file", p.addr, got, pinned, p.known.Path, got)
	case ok:
		return nil
	}
	if err := p.known.Pin(p.addr, got); err != nil {
		return fmt.Errorf("pin gateway %s: %w", p.addr, err)
	}
	fmt.Fprintf(p.env.stderr, "paradrop: first connection to gateway %s: pinned its certificate, SHA-256 fingerprint %s, in %s (check it on the gateway: paradrop info, or the daemon's startup log)\n", p.addr, got, p.known.Path)
	return nil
}

// fingerprint is the one accepted on this run's connections, if any.
func (p *gatewayPin) fingerprint() (tlscert.Fingerprint, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		return tlscert.Fingerprint{}, false
	}
	return *p.seen, true
}
