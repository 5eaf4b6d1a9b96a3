// Package viewer simulates a LAN viewer of the demo's HD stream chute (a
// TV, say): it pulls the live stream over HTTP, measures the rate at
// which it arrives and reports it to the chute every second, as players
// report their quality of experience to their service. It reconnects when
// the stream breaks.
package viewer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one viewer.
type Config struct {
	ID        string       // its name in its reports
	StreamURL string       // the chute's /stream
	ReportURL string       // the chute's /api/report
	Client    *http.Client // with no timeout: the stream does not end
	Every     time.Duration
}

// Viewer is a running viewer; its zero value is not usable, see Start.
type Viewer struct {
	cfg      Config
	received atomic.Uint64
	mu       sync.Mutex
	mbps     float64
}

// Start runs a viewer until ctx ends; wait returns once it has.
func Start(ctx context.Context, cfg Config) (v *Viewer, wait func()) {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	v = &Viewer{cfg: cfg}
	var wg sync.WaitGroup
	wg.Go(func() { v.pull(ctx) })
	wg.Go(func() { v.report(ctx) })
	return v, wg.Wait
}

// Mbps is the rate the stream arrived at over the last report's period.
func (v *Viewer) Mbps() float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mbps
}

// pull reads the stream, reconnecting a second after it breaks.
func (v *Viewer) pull(ctx context.Context) {
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.StreamURL, nil)
		if err != nil {
			return
		}
		if resp, err := v.cfg.Client.Do(req); err == nil {
			for resp.StatusCode == http.StatusOK {
				n, err := resp.Body.Read(buf)
				v.received.Add(uint64(n))
				if err != nil {
					break
				}
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// report measures the rate every period and POSTs it to the chute.
func (v *Viewer) report(ctx context.Context) {
	tick := time.NewTicker(v.cfg.Every)
	defer tick.Stop()
	last, lastAt := v.received.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := v.received.Load()
			mbps := float64(n-last) * 8 / now.Sub(lastAt).Seconds() / 1e6
			last, lastAt = n, now
			v.mu.Lock()
			v.mbps = mbps
			v.mu.Unlock()
			// A lost report is the next one's to make up for.
			v.post(ctx, mbps)
		}
	}
}

func (v *Viewer) post(ctx context.Context, mbps float64) error {
	body, _ := json.Marshal(map[string]any{"viewer": v.cfg.ID, "mbps": mbps})
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Every)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.ReportURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: %s", resp.Status)
	}
	return nil
}
