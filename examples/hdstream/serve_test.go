package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T, rate float64) (*server, *httptest.Server) {
	t.Helper()
	s := &server{rate: rate, reports: map[string]Report{}}
	ctx, cancel := context.WithCancel(context.Background())
	go s.meter(ctx)
	ts := httptest.NewServer(s.handler())
	t.Cleanup(func() { cancel(); ts.Close() })
	return s, ts
}

// The stream arrives at its rate, the chute meters what it sent, and a
// viewer beyond maxViewers is turned away.
func TestStreamRate(t *testing.T) {
	const rate = 4e6
	s, ts := newTestServer(t, rate)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	const window = 2 * time.Second
	start := time.Now()
	n, _ := io.CopyN(io.Discard, resp.Body, int64(rate/8*window.Seconds()))
	got := float64(n) * 8 / time.Since(start).Seconds()
	// The bytes of 2 s at the rate take 2 s, give or take the playout
	// budget; a stream not paced would take far less.
	if got > rate*1.15 || got < rate*0.7 {
		t.Errorf("stream arrived at %.2f Mbit/s, want about %.2f", got/1e6, rate/1e6)
	}
	time.Sleep(1100 * time.Millisecond)
	if st := s.status(); st.Viewers != 1 || st.SentMbps < rate/1e6*0.7 {
		t.Errorf("status %+v while one viewer streams", st)
	}
	for range maxViewers - 1 {
		r, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stream", nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("viewer within the limit: %v %v", resp, err)
		}
		defer resp.Body.Close()
	}
	r, err := http.Get(ts.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("viewer %d: %d, want 503", maxViewers+1, r.StatusCode)
	}
}

// Viewers' reports show in the status; bad ones are refused, and no more
// than maxReports viewers are remembered.
func TestReports(t *testing.T) {
	_, ts := newTestServer(t, 1e6)
	post := func(body string) int {
		t.Helper()
		resp, err := http.Post(ts.URL+"/api/report", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, bad := range []string{``, `{`, `{"mbps":3}`, `{"viewer":"tv","mbps":-1}`, `{"viewer":"` + strings.Repeat("x", 65) + `","mbps":1}`,
		`{"viewer":"tv","mbps":1,"pad":"` + strings.Repeat("x", 2000) + `"}`} {
		if code := post(bad); code != http.StatusBadRequest {
			t.Errorf("report %.40q: %d, want 400", bad, code)
		}
	}
	for i := range maxReports + 5 {
		if code := post(`{"viewer":"v` + string(rune('a'+i)) + `","mbps":12.5}`); code != http.StatusNoContent {
			t.Fatalf("report %d: %d", i, code)
		}
	}
	resp, err := http.Get(ts.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Reports) != maxReports || st.Reports[len(st.Reports)-1].Mbps != 12.5 {
		t.Errorf("status reports %+v, want the last %d", st.Reports, maxReports)
	}
}
