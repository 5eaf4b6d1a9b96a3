package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"paradrop/tlscert"
)

// A peer, over pinned TLS with its operator's token: its active hosts
// only; a token of a developer it knows, expiring, revoked by the
// function returned; ErrNotDeveloper for one it does not; an answer too
// large refused; another certificate gets no request at all.
func TestPeer(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v1/hosts":
			w.Write([]byte(`{"hosts":[{"mac":"02:00:00:00:00:0a","active":true},{"mac":"02:00:00:00:00:0b","active":false}]}`))
		case "POST /api/v1/developers/acme/tokens":
			var req struct{ Expires time.Time }
			if json.NewDecoder(r.Body).Decode(&req) != nil || time.Until(req.Expires) < 50*time.Second || time.Until(req.Expires) > time.Minute {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"t1","token":"acme-token"}`))
		case "DELETE /api/v1/developers/acme/tokens/t1":
			w.WriteHeader(http.StatusNoContent)
		case "POST /api/v1/chutes/cam/migrate":
			var to Target
			if r.URL.RawQuery != "wait=1" || json.NewDecoder(r.Body).Decode(&to) != nil || to != (Target{URL: "https://b", Token: "acme-token", Fingerprint: "AB"}) {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Write([]byte(`{"state":"done"}`))
		case "POST /api/v1/chutes/web/migrate":
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(`{"state":"failed","error":"target refused"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such developer"}`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	pin := tlscert.Of(srv.Certificate().Raw).String()
	peer := Target{URL: srv.URL, Token: "op-token", Fingerprint: pin}

	macs, err := peer.ActiveHosts(ctx)
	if err != nil || !slices.Equal(macs, []string{"02:00:00:00:00:0a"}) {
		t.Errorf("active hosts %v, %v", macs, err)
	}
	dev, revoke, err := peer.ForDeveloper(ctx, "acme", time.Minute)
	if err != nil || dev.Token != "acme-token" || dev.URL != peer.URL || dev.Fingerprint != pin {
		t.Fatalf("ForDeveloper: %+v, %v", dev, err)
	}
	if err := revoke(ctx); err != nil {
		t.Errorf("revoke: %v", err)
	}
	if err := peer.Migrate(ctx, "cam", Target{URL: "https://b", Token: "acme-token", Fingerprint: "AB"}); err != nil {
		t.Errorf("migrate cam: %v", err)
	}
	if err := peer.Migrate(ctx, "web", Target{URL: "https://b", Token: "x"}); err == nil || !strings.Contains(err.Error(), "target refused") {
		t.Errorf("a failed migration: %v", err)
	}
	if _, _, err := peer.ForDeveloper(ctx, "stranger", time.Minute); !errors.Is(err, ErrNotDeveloper) {
		t.Errorf("an unknown developer: %v, want ErrNotDeveloper", err)
	}

	other := peer
	other.Fingerprint = tlscert.Of([]byte("another certificate")).String()
	mu.Lock()
	before := len(seen)
	mu.Unlock()
	if _, err := other.ActiveHosts(ctx); err == nil {
		t.Error("another certificate than the one pinned was trusted")
	}
	mu.Lock()
	if len(seen) != before {
		t.Errorf("a request reached a server whose certificate is not pinned: %v", seen[before:])
	}
	want := []string{"GET /api/v1/hosts Bearer op-token", "POST /api/v1/developers/acme/tokens Bearer op-token",
		"DELETE /api/v1/developers/acme/tokens/t1 Bearer op-token", "POST /api/v1/chutes/cam/migrate Bearer op-token",
		"POST /api/v1/chutes/web/migrate Bearer op-token", "POST /api/v1/developers/stranger/tokens Bearer op-token"}
	if !slices.Equal(seen, want) {
		t.Errorf("requests %q, want %q", seen, want)
	}
	mu.Unlock()

	// Each call's connection is closed: a gateway polling its peer every
	// few seconds must not pile up idle connections there.
	var open atomic.Int32
	plain := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"hosts":[]}`))
	}))
	plain.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	plain.Start()
	defer plain.Close()
	for range 5 {
		if _, err := (Target{URL: plain.URL, Token: "op-token"}).ActiveHosts(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(2 * time.Second); open.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left open after 5 calls", open.Load())
		}
	}

	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"hosts":[` + strings.Repeat(" ", maxHostsAnswer) + `]}`))
	}))
	defer huge.Close()
	if _, err := (Target{URL: huge.URL, Token: "op-token"}).ActiveHosts(ctx); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("an answer beyond the bound: %v", err)
	}
}
