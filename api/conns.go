package api

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter caps the connections the daemon holds open: per client
// address and in all. A connection over a client's cap is closed at once,
// not queued, so that it costs nothing and the client learns quickly. When
// the total is reached, the connection that has waited longest without a
// request in progress (idle keep-alive, or headers still coming) is closed to
// make room: such a connection costs its client nothing to reopen, and
// closing it rather than refusing the newcomer keeps the API answerable to a
// fresh client while others hold every slot. Only when every slot has a
// request in progress is the newcomer refused.
type connLimiter struct {
	max, perClient int

	mu       sync.Mutex
	open     map[*limitedConn]struct{}
	byClient map[string]int
	now      func() time.Time
}

func newConnLimiter(max, perClient int) *connLimiter {
	return &connLimiter{max: max, perClient: perClient,
		open: map[*limitedConn]struct{}{}, byClient: map[string]int{}, now: time.Now}
}

// limitedConn is a connection the limiter counts until it is closed.
type limitedConn struct {
	net.Conn
	l      *connLimiter
	client string
	// Guarded by l.mu: whether it has no request in progress, and since when.
	waiting bool
	since   time.Time
	once    sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// admit counts c in, or returns nil if it must be closed.
func (l *connLimiter) admit(c net.Conn) *limitedConn {
	client := addrHost(c.RemoteAddr())
	lc := &limitedConn{Conn: c, l: l, client: client, waiting: true}
	l.mu.Lock()
	if l.perClient > 0 && l.byClient[client] >= l.perClient {
		l.mu.Unlock()
		return nil
	}
	var evict *limitedConn
	if l.max > 0 && len(l.open) >= l.max {
		for o := range l.open {
			if o.waiting && (evict == nil || o.since.Before(evict.since)) {
				evict = o
			}
		}
		if evict == nil {
			l.mu.Unlock()
			return nil
		}
		l.forget(evict)
	}
	lc.since = l.now()
	l.open[lc] = struct{}{}
	l.byClient[client]++
	l.mu.Unlock()
	if evict != nil {
		evict.Close() // already forgotten: its release is a no-op
	}
	return lc
}

func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forget(c)
}

// forget stops counting c. Callers hold l.mu.
func (l *connLimiter) forget(c *limitedConn) {
	if _, ok := l.open[c]; !ok {
		return
	}
	delete(l.open, c)
	if l.byClient[c.client]--; l.byClient[c.client] <= 0 {
		delete(l.byClient, c.client)
	}
}

// connState is the http.Server's ConnState hook: it marks which
// connections may be closed to make room.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lc.waiting = st == http.StateNew || st == http.StateIdle
	lc.since = l.now()
}

// count returns the connections open in all and from client.
func (l *connLimiter) count(client string) (all, fromClient int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open), l.byClient[client]
}

// listener applies the limiter to the connections ln accepts.
type limitedListener struct {
	net.Listener
	l *connLimiter
}

func (ln limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ln.l.admit(c); lc != nil {
			return lc, nil
		}
		c.Close()
	}
}

// addrHost is the client part of a connection's address: the IP the
// per-client limits count by.
func addrHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
