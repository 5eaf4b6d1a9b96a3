package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Alerter sends each event's alert to the cloud notification host: a
// small JSON POST (what happened and when: no picture leaves the home),
// retried with exponential backoff while the host cannot be reached, so
// that an outage delays alerts and loses none. The event store holds
// which are due, so a restart resumes them.
type Alerter struct {
	URL    string
	Camera string // the camera's name in the alert
	Client *http.Client
	Store  *Store
	// Backoff between failed attempts: Min, doubled up to Max.
	Min, Max time.Duration

	wake chan struct{}

	mu       sync.Mutex
	sent     int
	failures int // in a row
	lastErr  string
	retryAt  time.Time
}

// AlertStatus is the alerter's state in /api/status.
type AlertStatus struct {
	URL       string     `json:"url"`
	Pending   int        `json:"pending"`
	Sent      int        `json:"sent"`
	Failures  int        `json:"failures"` // in a row
	LastError string     `json:"last_error,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
}

// alert is the body of the POST.
type alert struct {
	Event  string    `json:"event"`
	Camera string    `json:"camera"`
	Time   time.Time `json:"time"`
	Score  int       `json:"score"`
}

// Notify says a new event is due.
func (a *Alerter) Notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run sends the alerts that are due until ctx is done.
func (a *Alerter) Run(ctx context.Context) {
	backoff := a.Min
	for {
		failed := false
		for _, ev := range a.Store.Pending() {
			err := a.send(ctx, ev)
			if ctx.Err() != nil {
				return
			}
			a.mu.Lock()
			if err != nil {
				failed = true
				a.failures++
				a.lastErr = err.Error()
				a.retryAt = time.Now().Add(backoff)
			} else {
				a.failures, a.lastErr, a.retryAt = 0, "", time.Time{}
			}
			a.mu.Unlock()
			if failed {
				break
			}
		}
		wait := time.Duration(1<<62 - 1)
		if failed {
			// Jitter, so that gateways cut off together do not retry together.
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, a.Max)
		} else {
			backoff = a.Min
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// send POSTs ev's alert and records its outcome in the store: sent on
// 2xx, refused on a 4xx other than 408 and 429 (a retry would be refused
// too); anything else is an error and the alert stays due.
func (a *Alerter) send(ctx context.Context, ev Event) error {
	body, err := json.Marshal(alert{Event: ev.ID, Camera: a.Camera, Time: ev.Start, Score: ev.Score})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.Client.Do(req)
	if err != nil {
		return fmt.Errorf("alert %s: %w", ev.ID, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	state := ""
	switch c := resp.StatusCode; {
	case c/100 == 2:
		state = alertSent
	case c/100 == 4 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		state = alertRefused
	default:
		return fmt.Errorf("alert %s: %s", ev.ID, resp.Status)
	}
	if state == alertSent {
		a.mu.Lock()
		a.sent++
		a.mu.Unlock()
	}
	// An event dropped for room meanwhile has nothing left to mark.
	a.Store.Update(ev.ID, func(e *Event) { e.Alert = state })
	return nil
}

// Status is the alerter's state.
func (a *Alerter) Status() AlertStatus {
	pending := len(a.Store.Pending())
	a.mu.Lock()
	defer a.mu.Unlock()
	st := AlertStatus{URL: a.URL, Pending: pending, Sent: a.sent, Failures: a.failures, LastError: a.lastErr}
	if !a.retryAt.IsZero() {
		t := a.retryAt
		st.RetryAt = &t
	}
	return st
}
