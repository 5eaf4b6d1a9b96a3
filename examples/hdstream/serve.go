package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits on what outsiders can make the chute spend.
const (
	maxViewers    = 4       // streams at once; more get 503
	maxReports    = 16      // viewers remembered, the oldest report dropped
	maxReportBody = 1 << 10 // bytes
	maxViewerID   = 64      // bytes
)

//go:embed index.html
var page []byte

// server is the chute: the stream, the viewers' reports and its meter.
type server struct {
	rate    float64 // bit/s
	viewers atomic.Int32
	sent    atomic.Uint64 // bytes written to viewers
	skipped atomic.Uint64 // ticks skipped, past their playout budget

	mu      sync.Mutex
	sentBPS float64 // over the last second
	reports map[string]Report
}

// Report is a viewer's last word on the rate it receives.
type Report struct {
	Viewer string    `json:"viewer"`
	Mbps   float64   `json:"mbps"`
	At     time.Time `json:"at"`
}

// Status is what GET /api/status answers.
type Status struct {
	RateMbps     float64  `json:"rate_mbps"` // the stream's own rate
	SentMbps     float64  `json:"sent_mbps"` // to all viewers, over the last second
	Viewers      int      `json:"viewers"`   // streams open now
	SkippedTicks uint64   `json:"skipped_ticks"`
	Reports      []Report `json:"reports"` // by viewer
}

func serveFromEnv() error {
	rate, err := parseRate(cmp.Or(os.Getenv("HDSTREAM_RATE"), "20000000"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cmp.Or(os.Getenv("HDSTREAM_LISTEN"), ":80"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s := &server{rate: rate, reports: map[string]Report{}}
	go s.meter(ctx)
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	log.Printf("hdstream: %.1f Mbit/s on %s", rate/1e6, ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", s.stream)
	mux.HandleFunc("POST /api/report", s.report)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	return mux
}

// stream sends the live stream until the viewer goes or the chute stops.
func (s *server) stream(w http.ResponseWriter, r *http.Request) {
	if s.viewers.Add(1) > maxViewers {
		s.viewers.Add(-1)
		http.Error(w, "too many viewers", http.StatusServiceUnavailable)
		return
	}
	defer s.viewers.Add(-1)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	var chunk []byte
	// A tick's packets go out together, as one write.
	pace(r.Context(), s.rate, func(n int) { s.skipped.Add(uint64(n)) }, func(pkt []byte) error {
		chunk = append(chunk, pkt...)
		if len(chunk) < int(s.rate/8*tickPeriod.Seconds()) {
			return nil
		}
		defer func() { chunk = chunk[:0] }()
		// A viewer that stops reading blocks the write, the ticks go
		// stale and are skipped; one gone for 10 s is let go.
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		s.sent.Add(uint64(len(chunk)))
		return rc.Flush()
	})
}

// report takes a viewer's {"viewer":ID,"mbps":X}.
func (s *server) report(w http.ResponseWriter, r *http.Request) {
	var rep Report
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportBody))
	if err := dec.Decode(&rep); err != nil || rep.Viewer == "" || len(rep.Viewer) > maxViewerID || !(rep.Mbps >= 0 && rep.Mbps < 1e6) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"want {\"viewer\": ID (1 to 64 bytes), \"mbps\": a rate >= 0}"}`+"\n")
		return
	}
	rep.At = time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.reports[rep.Viewer]; !known && len(s.reports) >= maxReports {
		oldest := ""
		for id, r := range s.reports {
			if oldest == "" || r.At.Before(s.reports[oldest].At) {
				oldest = id
			}
		}
		delete(s.reports, oldest)
	}
	s.reports[rep.Viewer] = rep
	w.WriteHeader(http.StatusNoContent)
}

// meter measures what was sent each second.
func (s *server) meter(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := s.sent.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := s.sent.Load()
			s.mu.Lock()
			s.sentBPS = float64(n-last) * 8 / now.Sub(lastAt).Seconds()
			s.mu.Unlock()
			last, lastAt = n, now
		}
	}
}

func (s *server) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{RateMbps: s.rate / 1e6, SentMbps: s.sentBPS / 1e6, Viewers: int(s.viewers.Load()),
		SkippedTicks: s.skipped.Load(), Reports: []Report{}}
	for _, r := range s.reports {
		st.Reports = append(st.Reports, r)
	}
	slices.SortFunc(st.Reports, func(a, b Report) int { return cmp.Compare(a.Viewer, b.Viewer) })
	return st
}
