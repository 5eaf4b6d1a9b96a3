package chute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"paradrop/chute/manifest"
	"paradrop/chute/sandbox"
	"paradrop/netconf"
)

// checkGrace is how long past a health command's timeout the daemon waits
// for the shim's answer; the command itself is killed at the timeout.
const checkGrace = 5 * time.Second

// check runs the chute's health check once.
func (m *Manager) check(ctx context.Context, name string, sb *sandbox.Chute, h *manifest.Health) error {
	if h.HTTP != nil {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(h.Timeout))
		defer cancel()
		return m.checkHTTP(ctx, name, h.HTTP)
	}
	// The command runs in the chute, confined as its command is, with the
	// timeout of the spec it was started with (healthOf).
	ctx, cancel := context.WithTimeout(ctx, time.Duration(h.Timeout)+checkGrace)
	defer cancel()
	res, err := sb.Check(ctx)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return fmt.Errorf("health command: %w", err)
	}
	return nil
}

// healthOf is the sandbox's health check for a manifest's health command.
func healthOf(man *manifest.Manifest) *sandbox.HealthCheck {
	if man.Health == nil || len(man.Health.Command) == 0 {
		return nil
	}
	return &sandbox.HealthCheck{Args: man.Health.Command, Timeout: time.Duration(man.Health.Timeout)}
}

// checkHTTP sends GET to the chute's own loopback: the connection is made
// from inside its network namespace, so no route to it is needed.
func (m *Manager) checkHTTP(ctx context.Context, name string, ep *manifest.HTTPEndpoint) error {
	tr := m.netnsTransport(name)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(ep.Port)+ep.Path, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health http: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("health http: status %d", resp.StatusCode)
	}
	return nil
}

// netnsTransport dials from inside the chute's network namespace, so
// that its own loopback is reachable without any route to it.
func (m *Manager) netnsTransport(name string) *http.Transport {
	return &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netconf.InNetNS(m.paths.netns(name), func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}
}

// watchHealth kills the chute after Retries failed checks in a row; the
// restart policy then brings it back.
func (m *Manager) watchHealth(ctx context.Context, name string, sb *sandbox.Chute, man *manifest.Manifest) {
	h := man.Health
	t := time.NewTicker(time.Duration(h.Interval))
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.check(ctx, name, sb, h); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			m.logf("chute %s: health check failed (%d/%d): %v", name, failures, h.Retries, err)
			if failures >= h.Retries {
				m.logf("chute %s: unhealthy, killing it", name)
				sb.Signal(syscall.SIGKILL)
				return
			}
			continue
		}
		failures = 0
	}
}

var errNotStable = errors.New("did not stay up")

// waitStable judges a freshly started version: within the update timeout it
// must pass its health check (if it has one) and then stay up for
// StableFor.
func (m *Manager) waitStable(ctx context.Context, p *progress, name string, sb *sandbox.Chute, man *manifest.Manifest) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(man.Update.Timeout))
	defer cancel()
	if h := man.Health; h != nil {
		var last error
		for {
			if last = m.check(ctx, name, sb, h); last == nil {
				p.step("health check passed")
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("health check did not pass within %s: %v", time.Duration(man.Update.Timeout), last)
			case <-sb.Exited():
				return fmt.Errorf("%w: exited before passing its health check", errNotStable)
			case <-time.After(min(time.Duration(h.Interval), time.Second)):
			}
		}
	}
	select {
	case <-sb.Exited():
		return fmt.Errorf("%w for %s", errNotStable, time.Duration(man.Update.StableFor))
	case <-time.After(time.Duration(man.Update.StableFor)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
