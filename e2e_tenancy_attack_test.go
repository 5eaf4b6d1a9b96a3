package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/examples"
)

// TestTenancyBoundaryOnRealDaemon is the matrix's row set on the real
// binary with a real chute: who reaches what, by status; installing a name
// another developer has; a followed log cut by revoking its token; a
// waited change that fails answering 422; and every refusal of a
// non-operator in the daemon's log.
func TestTenancyBoundaryOnRealDaemon(t *testing.T) {
	d, top := startRealDaemon(t, "talk", "nostart")
	opTok, err := os.ReadFile(filepath.Join(d.data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	operator := strings.TrimSpace(string(opTok))
	call := func(token, method, path string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, d.url+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	developer := func(name string) (token, id string) {
		code, body := call(operator, "POST", "/api/v1/developers", []byte(`{"name":"`+name+`","allow":{"unsigned":true}}`))
		var made struct {
			Token   string `json:"token"`
			TokenID string `json:"token_id"`
		}
		if code != http.StatusCreated || json.Unmarshal([]byte(body), &made) != nil {
			t.Fatalf("developer %s: %d %s", name, code, body)
		}
		return made.Token, made.TokenID
	}
	acme, acmeID := developer("acme")
	beta, _ := developer("beta")
	code, body := call(operator, "POST", "/api/v1/developers/acme/tokens", nil)
	var tok struct{ ID, Token string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("token: %d %s", code, body)
	}
	if code, body := call(operator, "DELETE", "/api/v1/developers/acme/tokens/"+tok.ID, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	revoked := tok.Token

	talk := func(who string) []byte {
		p, err := examples.Package(`name: talk
version: 1.0.0
command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo `+who+` $i; sleep 0.2; done"]
resources: {memory: 32Mi}
`, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if code, body := call(acme, "POST", "/api/v1/chutes?wait=1", talk("acme")); code != 200 {
		t.Fatalf("acme installs talk: %d %s", code, body)
	}

	callers := []struct{ name, token string }{{"operator", operator}, {"acme", acme}, {"beta", beta}, {"none", ""}, {"revoked", revoked}}
	for _, r := range []struct {
		method, path string
		want         [5]int // by callers
	}{
		{"GET", "/api/v1/chutes/talk", [5]int{200, 200, 404, 401, 401}},
		{"GET", "/api/v1/chutes/talk/logs?tail=1", [5]int{200, 200, 404, 401, 401}},
		{"GET", "/api/v1/chutes/talk/resources", [5]int{200, 200, 404, 401, 401}},
		{"GET", "/api/v1/chutes/talk/usage", [5]int{200, 200, 404, 401, 401}},
		{"POST", "/api/v1/chutes/talk/restart?wait=1", [5]int{200, 200, 404, 401, 401}},
		{"GET", "/api/v1/chutes", [5]int{200, 200, 200, 401, 401}},
		{"GET", "/api/v1/self", [5]int{403, 403, 403, 401, 401}},
		{"GET", "/api/v1/developers", [5]int{200, 403, 403, 401, 401}},
		{"GET", "/api/v1/gateway/usage", [5]int{200, 403, 403, 401, 401}},
		{"GET", "/api/v1/health", [5]int{200, 200, 200, 200, 200}},
	} {
		for i, c := range callers {
			if code, body := call(c.token, r.method, r.path, nil); code != r.want[i] {
				t.Errorf("%s %s as %s: %d %s, want %d", r.method, r.path, c.name, code, body, r.want[i])
			}
		}
	}

	// The name is taken: beta is told no more than that; acme that it is
	// its own chute.
	code, body = call(beta, "POST", "/api/v1/chutes", talk("beta"))
	if code != http.StatusConflict || !strings.Contains(body, `name \"talk\": not available`) || strings.Contains(body, "acme") {
		t.Errorf("beta installs acme's name: %d %s", code, body)
	}
	if code, body := call(acme, "POST", "/api/v1/chutes", talk("acme")); code != http.StatusConflict || !strings.Contains(body, `chute \"talk\": chute already exists`) {
		t.Errorf("acme installs its own name again: %d %s", code, body)
	}

	// A waited change that fails answers 422 with the change.
	nostart, err := examples.Package("name: nostart\nversion: 1.0.0\ncommand: [/no/such/program]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body = call(operator, "POST", "/api/v1/chutes?wait=1", nostart)
	var ch struct{ State, Error string }
	if code != http.StatusUnprocessableEntity || json.Unmarshal([]byte(body), &ch) != nil || ch.State != "failed" || ch.Error == "" {
		t.Errorf("a failed install waited for: %d %s", code, body)
	}

	// acme follows its log; the operator revokes the token: the stream
	// ends, before the revocation has answered or just after.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", d.url+"/api/v1/chutes/talk/logs?tail=1&follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+acme)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for range 2 {
		if !lines.Scan() || !strings.Contains(lines.Text(), " acme ") {
			t.Fatalf("follow: %q %v", lines.Text(), lines.Err())
		}
	}
	ended := make(chan time.Time, 1)
	go func() {
		for lines.Scan() {
		}
		ended <- time.Now()
	}()
	revokedAt := time.Now()
	if code, body := call(operator, "DELETE", "/api/v1/developers/acme/tokens/"+acmeID, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	select {
	case at := <-ended:
		t.Logf("the follow ended %s after the revocation was asked", at.Sub(revokedAt).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("acme's follow goes on 5s after its token was revoked")
	}

	logb, _ := os.ReadFile(filepath.Join(top, "daemon.log"))
	for _, want := range []string{`refused developer:beta: GET "/api/v1/chutes/talk": 404`, `refused anonymous: GET "/api/v1/chutes/talk": 401 invalid token`, `refused developer:acme: GET "/api/v1/developers": 403`} {
		if !strings.Contains(string(logb), want) {
			t.Errorf("not in the daemon's log: %s", want)
		}
	}
}
