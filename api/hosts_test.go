package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/store"
)

// GET /api/v1/hosts gives the operator the LAN hosts as the manager has
// them, an empty list rather than null, 404 without a network, 400 on an
// unknown parameter (developers' 403 is the tenancy matrix's).
func TestHosts(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do(t, "GET", "/api/v1/hosts", ""); code != http.StatusNotFound || errorOf(t, body) != "networking disabled" {
		t.Errorf("GET /api/v1/hosts without a network: %d %s", code, body)
	}

	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fake := apitest.New()
	h := New(Config{Chutes: fake, DB: db, Network: fakeNetwork{}})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	path, _, err := EnsureOperatorToken(db, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.token = strings.TrimSpace(string(tok))

	if code, body := f.do(t, "GET", "/api/v1/hosts", ""); code != http.StatusOK || !strings.Contains(string(body), `"hosts": []`) {
		t.Errorf("no hosts: %d %s", code, body)
	}
	at := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	want := []chute.Host{{MAC: "02:00:00:00:00:0a", IPs: []string{"198.51.100.20"}, Port: "lan1", FirstSeen: at, LastSeen: at.Add(time.Minute), Active: true}}
	fake.SetHosts(want)
	code, body := f.do(t, "GET", "/api/v1/hosts", "")
	var got hostsResponse
	if code != http.StatusOK || json.Unmarshal(body, &got) != nil || !reflect.DeepEqual(got.Hosts, want) {
		t.Errorf("GET /api/v1/hosts: %d %s, want %+v", code, body, want)
	}
	if code, _ := f.do(t, "GET", "/api/v1/hosts?x=1", ""); code != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d", code)
	}
}
