package api

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Limits bound what clients can hold of the daemon: connections, time and
// concurrent uploads. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	// HeaderTimeout is how long a client has to send a request's headers.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for so long.
	IdleTimeout time.Duration
	// StallTimeout is the progress rule for bodies and responses: a request
	// body must bring MinRate bytes a second, counted over windows of
	// StallTimeout of the time the server waits for it, and a write to a
	// client must not block for longer. A slow upload that keeps coming
	// finishes however long it takes; one that stalls is dropped.
	StallTimeout time.Duration
	MinRate      int64 // bytes per second of a request body

	MaxConns          int // open connections, all clients together
	MaxConnsPerClient int // open connections from one client address

	MaxUploads          int // package uploads being read at once (503 beyond)
	MaxUploadsPerClient int // ... from one client address (429 beyond)
}

// DefaultLimits suit a home gateway: well under the usual 1024 descriptors,
// and enough for a browser's six connections from each of many clients.
var DefaultLimits = Limits{
	HeaderTimeout:       10 * time.Second,
	IdleTimeout:         60 * time.Second,
	StallTimeout:        30 * time.Second,
	MinRate:             1024,
	MaxConns:            256,
	MaxConnsPerClient:   32,
	MaxUploads:          4,
	MaxUploadsPerClient: 2,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.HeaderTimeout, d.HeaderTimeout)
	set(&l.IdleTimeout, d.IdleTimeout)
	set(&l.StallTimeout, d.StallTimeout)
	if l.MinRate <= 0 {
		l.MinRate = d.MinRate
	}
	setInt(&l.MaxConns, d.MaxConns)
	setInt(&l.MaxConnsPerClient, d.MaxConnsPerClient)
	setInt(&l.MaxUploads, d.MaxUploads)
	setInt(&l.MaxUploadsPerClient, d.MaxUploadsPerClient)
	return l
}

// drainTimeout is how long net/http may read what a handler left of a
// request body.
const drainTimeout = time.Second

// maxHeaderBytes bounds a request's headers (net/http's default is 1 MiB,
// which every connection could make the daemon hold): a bearer token and
// a browser's headers need a few KiB.
const maxHeaderBytes = 32 << 10

// Server is the daemon's HTTP server with Limits applied to every listener
// it serves.
type Server struct {
	*http.Server
	conns *connLimiter
}

// NewServer returns a server of h under lim. Requests' contexts derive from
// base, so that ending base ends long requests (followed logs, waits).
func NewServer(base context.Context, h http.Handler, lim Limits) *Server {
	lim = lim.withDefaults()
	conns := newConnLimiter(lim.MaxConns, lim.MaxConnsPerClient)
	return &Server{
		Server: &http.Server{
			Handler:           progressRule(h, lim),
			ReadHeaderTimeout: lim.HeaderTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			IdleTimeout:       lim.IdleTimeout,
			ConnState:         conns.connState,
			BaseContext:       func(net.Listener) context.Context { return base },
		},
		conns: conns,
	}
}

// Serve serves ln, its connections counted against the limits.
func (s *Server) Serve(ln net.Listener) error {
	return s.Server.Serve(limitedListener{Listener: ln, l: s.conns})
}

// ServeTLS serves HTTPS on ln with cert. Connections are counted before
// their handshake, so the limits hold for TLS as for plain connections, and
// net/http bounds the handshake by the header timeout. Only HTTP/1.1 is
// offered: HTTP/2 would carry many requests on one connection, past what
// the per-connection limits count.
func (s *Server) ServeTLS(ln net.Listener, cert tls.Certificate) error {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
	return s.Server.Serve(tls.NewListener(limitedListener{Listener: ln, l: s.conns}, cfg))
}

// progressRule applies the StallTimeout rule to the bodies and responses
// of h. net/http has only whole-request deadlines, which would cut off a
// slow upload that is still coming, or a followed log.
func progressRule(h http.Handler, lim Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			// Also bounds net/http's own draining of a body the handler
			// does not read (it refused the request first).
			_ = rc.SetReadDeadline(time.Now().Add(lim.StallTimeout))
			quota := max(1, int64(float64(lim.MinRate)*lim.StallTimeout.Seconds()))
			r.Body = &progressBody{body: r.Body, rc: rc, header: w.Header(), window: lim.StallTimeout, quota: quota}
		}
		h.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, timeout: lim.StallTimeout}, r)
		// What the handler left unread is drained by net/http before the
		// response is flushed: briefly, for a body that is already on its
		// way (else the connection is closed rather than reused), so that a
		// body trickled at a request that ignores it cannot hold the
		// connection. The flush gets its own time.
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(min(lim.StallTimeout, drainTimeout)))
		_ = rc.SetWriteDeadline(now.Add(2 * lim.StallTimeout))
	})
}

// progressBody fails a read once the client has taken longer than window of
// waiting to send quota bytes. Only time spent waiting in Read counts, so
// a server busy writing what it read does not count against the client.
type progressBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	header http.Header // of the response
	window time.Duration
	quota  int64

	waited time.Duration // in this window
	got    int64         // bytes in this window
	done   bool
}

// ErrStalled is the error a request body's Read returns when the client
// sends too slowly.
var ErrStalled = errors.New("request body stalled: the client sent too slowly")

func (b *progressBody) Read(p []byte) (int, error) {
	if b.done {
		return b.body.Read(p)
	}
	start := time.Now()
	if err := b.rc.SetReadDeadline(start.Add(b.window - b.waited)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := b.body.Read(p)
	b.waited += time.Since(start)
	b.got += int64(n)
	if b.got >= b.quota {
		b.waited, b.got = 0, 0
	}
	if err != nil {
		// The body is over: nothing more to wait for, and a deadline left
		// on the connection would cut net/http's watch for the client
		// hanging up (which cancels the request's context) or the next
		// request.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
		if err != io.EOF {
			// Do not let net/http wait for the rest of a broken body
			// before answering.
			b.header.Set("Connection", "close")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = ErrStalled
		}
	}
	return n, err
}

func (b *progressBody) Close() error { return b.body.Close() }

// progressWriter gives each write to the client StallTimeout to complete:
// a client that stops reading is dropped, one that reads slowly is not.
type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *progressWriter) extend() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

func (w *progressWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(p)
}

func (w *progressWriter) Flush() {
	w.extend()
	_ = w.rc.Flush()
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
