package viewer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The viewer measures the rate a stream arrives at, reports it, and
// reconnects when the stream breaks.
func TestViewerMeasuresAndReports(t *testing.T) {
	var mu sync.Mutex
	var reports []float64
	streams := 0
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		streams++
		first := streams == 1
		mu.Unlock()
		chunk := make([]byte, 12500) // 1 Mbit/s in 100 ms chunks
		for i := 0; ; i++ {
			if first && i == 15 {
				return // the first stream breaks after 1.5 s
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("POST /api/report", func(w http.ResponseWriter, r *http.Request) {
		var rep struct {
			Viewer string
			Mbps   float64
		}
		if json.NewDecoder(r.Body).Decode(&rep) != nil || rep.Viewer != "tv" {
			t.Errorf("bad report")
		}
		mu.Lock()
		reports = append(reports, rep.Mbps)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	v, wait := Start(ctx, Config{ID: "tv", StreamURL: ts.URL + "/stream", ReportURL: ts.URL + "/api/report",
		Client: &http.Client{}, Every: 500 * time.Millisecond})
	time.Sleep(4500 * time.Millisecond)
	cancel()
	ts.CloseClientConnections()
	wait()
	mu.Lock()
	defer mu.Unlock()
	if streams < 2 {
		t.Errorf("%d streams pulled, want a reconnection after the break", streams)
	}
	if len(reports) < 7 {
		t.Fatalf("%d reports in 4.5 s every 0.5 s", len(reports))
	}
	if last := reports[len(reports)-1]; last < 0.6 || last > 1.4 || v.Mbps() < 0.6 || v.Mbps() > 1.4 {
		t.Errorf("last report %.2f Mbit/s (viewer says %.2f), want about 1", last, v.Mbps())
	}
}
