package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"paradrop/tlscert"
)

// tlsOptions name the operator's own certificate; empty, the daemon makes
// and keeps a self-signed one under its data directory.
type tlsOptions struct {
	cert, key string
}

func tlsFlags(fs *flag.FlagSet, o *tlsOptions) {
	fs.StringVar(&o.cert, "tls-cert", "", "PEM certificate (and chain) of the HTTPS listeners, with --tls-key (default: a self-signed one made under DATA/"+tlscert.Dir+")")
	fs.StringVar(&o.key, "tls-key", "", "PEM private key of --tls-cert")
}

func (o tlsOptions) check() error {
	if (o.cert == "") != (o.key == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	return nil
}

// servesTLS says whether ln serves HTTPS: every listener but loopback
// ones, where only local processes connect and the operator's token file
// is readable anyway.
func servesTLS(ln net.Listener) bool {
	ta, ok := ln.Addr().(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// apiCertificate returns the certificate of the HTTPS listeners, or nil if
// none of lns serves HTTPS: a daemon on loopback only makes no key (and only
// checks that the operator's, if named, loads).
func apiCertificate(o tlsOptions, dataDir string, lns []net.Listener, logf func(string, ...any)) (*tlscert.Cert, error) {
	var names tlscert.Names
	for _, ln := range lns {
		if servesTLS(ln) {
			names.IPs = append(names.IPs, listenerIPs(ln)...)
		}
	}
	if names.IPs == nil && o.cert == "" {
		return nil, nil
	}
	if o.cert != "" {
		c, err := tlscert.LoadFiles(o.cert, o.key)
		if err != nil {
			return nil, err
		}
		if names.IPs == nil {
			logf("TLS certificate %s is not served: every listener is on loopback, which is plain HTTP", c.Path)
			return nil, nil
		}
		logf("TLS certificate %s (the operator's), SHA-256 fingerprint %s", c.Path, c.Fingerprint)
		return c, nil
	}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " /") {
		names.Hosts = append(names.Hosts, h)
	}
	c, err := tlscert.EnsureSelfSigned(dataDir, names, time.Now())
	if err != nil {
		return nil, err
	}
	how := "self-signed, made " + c.Leaf.NotBefore.Add(time.Hour).Format(time.DateOnly)
	if c.Made {
		how = "self-signed, made now"
	}
	logf("TLS certificate %s (%s, valid until %s), SHA-256 fingerprint %s", c.Path, how, c.Leaf.NotAfter.Format(time.DateOnly), c.Fingerprint)
	if missing := c.Missing(names); len(missing) > 0 {
		logf("TLS certificate %s does not name %s: it is kept, as clients pinned it; remove it and its key to have one made for the current addresses", c.Path, strings.Join(missing, ", "))
	}
	return c, nil
}

// listenerIPs are the addresses clients reach ln at: its own, or every
// address of the host for a listener on all of them.
func listenerIPs(ln net.Listener) []net.IP {
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	if !ta.IP.IsUnspecified() {
		return []net.IP{ta.IP}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
			ips = append(ips, ipn.IP)
		}
	}
	return ips
}

// listenLog describes how ln is served, for the startup log.
func listenLog(ln net.Listener) string {
	if servesTLS(ln) {
		return fmt.Sprintf("%s (HTTPS)", ln.Addr())
	}
	return fmt.Sprintf("%s (HTTP, loopback)", ln.Addr())
}
