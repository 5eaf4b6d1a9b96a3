package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"paradrop/api"
	"paradrop/sdn"
	"paradrop/tlscert"
)

// apiPort is the API's port on the default addresses.
const apiPort = 8080

// apiLimitFlags defines the flags of what clients may hold of the daemon
// (api.Limits) on fs.
func apiLimitFlags(fs *flag.FlagSet, lim *api.Limits) {
	*lim = api.DefaultLimits
	fs.DurationVar(&lim.HeaderTimeout, "header-timeout", lim.HeaderTimeout, "time a client has to send a request's headers")
	fs.DurationVar(&lim.IdleTimeout, "idle-timeout", lim.IdleTimeout, "keep-alive connections with no request for so long are closed")
	fs.DurationVar(&lim.StallTimeout, "stall-timeout", lim.StallTimeout, "a request body must bring --min-rate bytes/s over each such window of waiting for it, and a write to a client must not block longer")
	fs.Int64Var(&lim.MinRate, "min-rate", lim.MinRate, "slowest request body accepted, bytes per second (see --stall-timeout)")
	fs.IntVar(&lim.MaxConns, "max-conns", lim.MaxConns, "open API connections, all clients together; idle ones are closed to make room")
	fs.IntVar(&lim.MaxConnsPerClient, "max-conns-per-client", lim.MaxConnsPerClient, "open API connections from one client address")
	fs.IntVar(&lim.MaxUploads, "max-uploads", lim.MaxUploads, "package uploads read at once (503 beyond)")
	fs.IntVar(&lim.MaxUploadsPerClient, "max-uploads-per-client", lim.MaxUploadsPerClient, "package uploads read at once from one client address (429 beyond)")
}

// checkLimits refuses limits that would disable themselves.
func checkLimits(lim api.Limits) error {
	for _, d := range []struct {
		name string
		ok   bool
	}{
		{"header-timeout", lim.HeaderTimeout > 0}, {"idle-timeout", lim.IdleTimeout > 0},
		{"stall-timeout", lim.StallTimeout > 0}, {"min-rate", lim.MinRate > 0},
		{"max-conns", lim.MaxConns > 0}, {"max-conns-per-client", lim.MaxConnsPerClient > 0},
		{"max-uploads", lim.MaxUploads > 0}, {"max-uploads-per-client", lim.MaxUploadsPerClient > 0},
	} {
		if !d.ok {
			return fmt.Errorf("--%s must be more than 0", d.name)
		}
	}
	return nil
}

// apiAddrs are the addresses the API listens on: those of --listen (a
// comma-separated list, the flag repeatable), else loopback and, when the
// chute network has one, the gateway's LAN address; never every interface
// unless the operator asks for it.
func apiAddrs(listen string, network *sdn.Config) (addrs []string, lan string, err error) {
	if listen != "" {
		for _, a := range strings.Split(listen, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, "", fmt.Errorf("--listen %q: want HOST:PORT or :PORT", a)
			}
			addrs = append(addrs, a)
		}
		return addrs, "", nil
	}
	addrs = []string{netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), apiPort).String()}
	if network != nil && network.LANAddr.IsValid() {
		lan = netip.AddrPortFrom(network.LANAddr.Addr(), apiPort).String()
		addrs = append(addrs, lan)
	}
	return addrs, lan, nil
}

// listenAPI opens the API's listeners. The LAN address is bound with
// IP_FREEBIND: the chute network puts it on its port only later, and the
// listeners are opened first so that a busy port fails before any chute is
// touched.
func listenAPI(ctx context.Context, addrs []string, lan string) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range addrs {
		var lc net.ListenConfig
		if a == lan {
			lc.Control = freebind
		}
		ln, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func freebind(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("IP_FREEBIND: %w", serr)
	}
	return nil
}

// serveAPI serves srv on every listener, HTTPS with cert on those that are
// not loopback (servesTLS; cert is then not nil). The channel gets the end
// of each: nil after a shutdown, else why serving it failed.
func serveAPI(srv *api.Server, lns []net.Listener, cert *tlscert.Cert) <-chan error {
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() {
			var err error
			if servesTLS(ln) {
				err = srv.ServeTLS(ln, cert.TLS)
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			served <- err
		}()
	}
	return served
}

// listenFlag collects --listen, repeatable and comma-separated.
type listenFlag struct{ v *string }

func (f listenFlag) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}

func (f listenFlag) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
			return fmt.Errorf("%q: want HOST:PORT or :PORT", a)
		}
	}
	if *f.v != "" {
		s = *f.v + "," + s
	}
	*f.v = s
	return nil
}
