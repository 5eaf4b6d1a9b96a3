package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// An alert the cloud cannot take is retried, with backoff, until it can;
// one it refuses with a 4xx is not retried; every alert is sent once.
func TestAlerterRetries(t *testing.T) {
	s := testStore(t, t.TempDir(), 1<<20)
	var mu sync.Mutex
	var got []alert
	var attempts []time.Time
	down := true
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		var a alert
		switch {
		case down:
			http.Error(w, "down", http.StatusBadGateway)
		case json.NewDecoder(r.Body).Decode(&a) != nil || r.Header.Get("Content-Type") != "application/json":
			http.Error(w, "bad alert", http.StatusBadRequest)
		case a.Score == 99:
			http.Error(w, "not for us", http.StatusForbidden)
		default:
			got = append(got, a)
		}
	}))
	defer cloud.Close()
	a := &Alerter{URL: cloud.URL, Camera: "door", Client: cloud.Client(), Store: s, Min: 20 * time.Millisecond, Max: 80 * time.Millisecond, wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	first, err := s.Create(start, 20, []byte("f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	refused, err := s.Create(start.Add(time.Second), 99, []byte("f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Notify()
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	n := len(attempts)
	down = false
	mu.Unlock()
	// 500 ms of 20 ms doubling to 80 ms (with jitter): several, not hundreds.
	if n < 4 || n > 30 {
		t.Errorf("%d attempts in 500 ms with the cloud down", n)
	}
	if st := a.Status(); st.Pending != 2 || st.Failures == 0 || st.LastError == "" {
		t.Errorf("status with the cloud down: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Pending()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Event != first.ID || got[0].Camera != "door" || !got[0].Time.Equal(first.Start) {
		t.Errorf("alerts received: %+v", got)
	}
	for _, ev := range s.Events() {
		want := map[string]string{first.ID: alertSent, refused.ID: alertRefused}[ev.ID]
		if ev.Alert != want {
			t.Errorf("event %s: alert %s, want %s", ev.ID, ev.Alert, want)
		}
	}
	if st := a.Status(); st.Pending != 0 || st.Sent != 1 || st.LastError != "" {
		t.Errorf("status after delivery: %+v", st)
	}
}
