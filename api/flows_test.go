package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/api/apitest"
	"paradrop/sdn"
	"paradrop/store"
)

type fakeNetwork map[string][]sdn.Rule

func (f fakeNetwork) Flows(_ context.Context, chute string) ([]sdn.Rule, error) {
	if chute == "" {
		var all []sdn.Rule
		for _, rs := range f {
			all = append(all, rs...)
		}
		return all, nil
	}
	rs, ok := f[chute]
	if !ok {
		return nil, fmt.Errorf("flows of %q: %w", chute, sdn.ErrNotAttached)
	}
	return rs, nil
}

func TestFlows(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/api/v1/flows", "/api/v1/chutes/web/flows"} {
		if code, body := f.do(t, "GET", path, ""); code != http.StatusNotFound || errorOf(t, body) != "networking disabled" {
			t.Errorf("GET %s without a network: %d %s", path, code, body)
		}
	}

	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rule := sdn.Rule{Chute: "web", Table: 2, Priority: 250, Rule: "chute web may reach LAN 198.51.100.20:554/tcp", Packets: 3, Bytes: 180, Installed: true}
	h := New(Config{Chutes: apitest.New(), DB: db, Network: fakeNetwork{"web": {rule}}})
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

	for _, path := range []string{"/api/v1/flows", "/api/v1/chutes/web/flows"} {
		code, body := f.do(t, "GET", path, "")
		var got flowsResponse
		if code != http.StatusOK || json.Unmarshal(body, &got) != nil || len(got.Rules) != 1 || got.Rules[0] != rule {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if code, body := f.do(t, "GET", "/api/v1/chutes/db/flows", ""); code != http.StatusNotFound {
		t.Errorf("flows of an unattached chute: %d %s", code, body)
	}
	if code, _ := f.do(t, "GET", "/api/v1/flows?x=1", ""); code != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d", code)
	}
}
