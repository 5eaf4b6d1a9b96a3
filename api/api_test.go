package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/store"
)

const maxUpload = 1024

type fixture struct {
	srv   *httptest.Server
	fake  *apitest.Fake
	token string
}

// tokenDB returns a store holding an operator token, and the token.
func tokenDB(t *testing.T) (*store.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	path, _, err := EnsureOperatorToken(db, dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return db, strings.TrimSpace(string(tok))
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, maxUpload)
}

func newFixtureWith(t *testing.T, maxUpload int64) *fixture {
	t.Helper()
	db, tok := tokenDB(t)
	fake := apitest.New()
	fake.Add(chute.Info{Name: "web", Version: "1.0", State: chute.Running, Desired: chute.Running})
	h := New(Config{Chutes: fake, DB: db, Version: "test", Started: time.Now(), MaxUpload: maxUpload, Logf: t.Logf})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, fake: fake, token: tok}
}

// do sends a request with the operator token (unless token is "none") and
// returns the status and body.
func (f *fixture) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	return f.doToken(t, f.token, method, path, body)
}

func (f *fixture) doToken(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// errorOf decodes an error body, failing if it is not {"error": "..."}.
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil || len(e) != 1 || e["error"] == "" {
		t.Fatalf("error body %q is not {\"error\": ...}", body)
	}
	return e["error"]
}

// endpoints lists every route with a request that succeeds given the token.
var endpoints = []struct{ method, path, body string }{
	{"GET", "/api/v1/info", ""},
	{"GET", "/api/v1/chutes", ""},
	{"GET", "/api/v1/chutes/web", ""},
	{"POST", "/api/v1/chutes", "db 1.0\n"},
	{"PUT", "/api/v1/chutes/web", "web 2.0\n"},
	{"POST", "/api/v1/chutes/web/start", ""},
	{"POST", "/api/v1/chutes/web/stop", ""},
	{"POST", "/api/v1/chutes/web/restart", ""},
	{"GET", "/api/v1/chutes/web/logs?tail=5", ""},
	{"GET", "/api/v1/changes", ""},
	{"GET", "/api/v1/changes/1", ""},
	{"DELETE", "/api/v1/chutes/web?keep_data=1", ""},
}

func TestAuthRequired(t *testing.T) {
	f := newFixture(t)
	for _, e := range endpoints {
		for _, tok := range []string{"", "wrong", f.token + "x"} {
			code, body := f.doToken(t, tok, e.method, e.path, e.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", e.method, e.path, tok, code)
				continue
			}
			errorOf(t, body)
		}
	}
	// In order, so that the DELETE comes last and the others find "web".
	for _, e := range endpoints {
		code, body := f.do(t, e.method, e.path, e.body)
		if code/100 != 2 {
			t.Errorf("%s %s with token: %d %s", e.method, e.path, code, body)
		}
	}
}

func TestUnauthorizedHeader(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/api/v1/chutes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
}

func TestHealthOpen(t *testing.T) {
	f := newFixture(t)
	code, body := f.doToken(t, "", "GET", "/api/v1/health", "")
	if code != 200 || strings.TrimSpace(string(body)) != "{\n  \"status\": \"ok\"\n}" {
		t.Errorf("health: %d %s", code, body)
	}
}

func TestInfo(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "GET", "/api/v1/info", "")
	var got infoResponse
	if err := json.Unmarshal(body, &got); code != 200 || err != nil {
		t.Fatalf("info: %d %s %v", code, body, err)
	}
	if got.Version != "test" || got.Chutes != 1 || got.Kernel == "" || (got.CgroupMode != "v1" && got.CgroupMode != "v2") || got.LANAddr != "" {
		t.Errorf("info = %+v", got)
	}
	db, tok := tokenDB(t)
	srv := httptest.NewServer(New(Config{Chutes: apitest.New(), DB: db, LANAddr: netip.MustParseAddr("198.51.100.1")}))
	defer srv.Close()
	withLAN := &fixture{srv: srv, token: tok}
	if _, body := withLAN.do(t, "GET", "/api/v1/info", ""); json.Unmarshal(body, &got) != nil || got.LANAddr != "198.51.100.1" {
		t.Errorf("info with a LAN address: %s", body)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{chute.ErrNotFound, 404},
		{chute.ErrExists, 409},
		{chute.ErrConflict, 409},
		{fmt.Errorf("install: %w: disk: ...", chute.ErrNoRoom), 409},
		{fmt.Errorf("change 7: %w", chute.ErrNoChange), 404},
		{chute.ErrInvalid, 400},
		{fmt.Errorf("install: %w", &chute.PrivilegeError{Devices: []string{"/dev/ttyUSB0"}}), 403},
		{chute.ErrTooLarge, 413},
		{&http.MaxBytesError{Limit: 1}, 413},
		{fmt.Errorf("read upload: %w", io.ErrUnexpectedEOF), 400},
		{errors.New("disk on fire"), 500},
	}
	f := newFixture(t)
	for _, tt := range tests {
		f.fake.Err = fmt.Errorf("manifest: resources.memory: %w", tt.err)
		for _, e := range []struct{ method, path, body string }{
			{"GET", "/api/v1/chutes/web", ""},
			{"POST", "/api/v1/chutes", "web 1.0"},
			{"PUT", "/api/v1/chutes/web", "web 1.0"},
			{"POST", "/api/v1/chutes/web/stop", ""},
			{"DELETE", "/api/v1/chutes/web", ""},
		} {
			code, body := f.do(t, e.method, e.path, e.body)
			if code != tt.code {
				t.Errorf("%v: %s %s: %d, want %d", tt.err, e.method, e.path, code, tt.code)
			}
			if msg := errorOf(t, body); msg != f.fake.Err.Error() {
				t.Errorf("%v: error %q, want %q", tt.err, msg, f.fake.Err.Error())
			}
		}
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/v1/chutes/Web", 400},
		{"GET", "/api/v1/chutes/-web", 400},
		{"GET", "/api/v1/chutes/web-", 400},
		{"GET", "/api/v1/chutes/we_b", 400},
		{"GET", "/api/v1/chutes/" + strings.Repeat("a", 64), 400},
		{"GET", "/api/v1/chutes/%2e%2e", 400},
		{"POST", "/api/v1/chutes/a%2Fb/start", 400},
		{"GET", "/api/v1/chutes/web/logs?tail=x", 400},
		{"GET", "/api/v1/chutes/web/logs?tail=-1", 400},
		{"GET", "/api/v1/chutes/web/logs?tail=100001", 400},
		{"GET", "/api/v1/chutes/web/logs?follow=maybe", 400},
		{"GET", "/api/v1/chutes/web/logs?tail=1&tail=2", 400},
		{"DELETE", "/api/v1/chutes/web?keepdata=1", 400},
		{"POST", "/api/v1/chutes/web/start?wait=yes", 400},
		{"GET", "/api/v1/chutes?%zz", 400},
		{"GET", "/api/v1/changes/abc", 400},
		{"GET", "/api/v1/changes/0", 400},
		{"GET", "/api/v1/changes/-1", 400},
		{"GET", "/api/v1/changes/99", 404},
		{"GET", "/api/v1/chutes/nope", 404},
		{"GET", "/api/v1/nothing", 404},
		{"DELETE", "/api/v1/chutes", 405},
		{"POST", "/api/v1/changes/1", 405},
	}
	for _, tt := range tests {
		code, body := f.do(t, tt.method, tt.path, "")
		if code != tt.code {
			t.Errorf("%s %s: %d, want %d (%s)", tt.method, tt.path, code, tt.code, body)
			continue
		}
		errorOf(t, body)
	}
	// The fake still has "web": nothing above reached it.
	if _, err := f.fake.Get("web"); err != nil {
		t.Error(err)
	}
}

func TestOversizedBody(t *testing.T) {
	f := newFixture(t)
	big := "big 1.0\n" + strings.Repeat("x", maxUpload)
	code, body := f.do(t, "POST", "/api/v1/chutes", big)
	if code != 413 {
		t.Errorf("with Content-Length: %d, want 413", code)
	}
	errorOf(t, body)

	// Without a Content-Length the limit hits while the manager reads.
	req, _ := http.NewRequest("PUT", f.srv.URL+"/api/v1/chutes/web", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 {
		t.Errorf("chunked: %d, want 413 (%s)", resp.StatusCode, b)
	}
	errorOf(t, b)
}

func TestChangeQueued(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "POST", "/api/v1/chutes", "db 1.0\n")
	var got changeQueued
	if err := json.Unmarshal(body, &got); code != 202 || err != nil || got.Chute != "db" || got.ChangeID == 0 {
		t.Fatalf("install: %d %s", code, body)
	}
	code, body = f.do(t, "GET", fmt.Sprintf("/api/v1/changes/%d", got.ChangeID), "")
	var c chute.Change
	if err := json.Unmarshal(body, &c); code != 200 || err != nil || c.Action != "install" {
		t.Fatalf("change: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/api/v1/changes", "")
	var list struct{ Changes []chute.Change }
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.Changes) != 1 {
		t.Fatalf("changes: %d %s", code, body)
	}
}

func TestWait(t *testing.T) {
	for _, failMsg := range []string{"", "health check failed"} {
		f := newFixture(t)
		f.fake.Hold = true
		type result struct {
			code int
			body []byte
		}
		done := make(chan result)
		go func() {
			code, body := f.do(t, "POST", "/api/v1/chutes/web/restart?wait=1", "")
			done <- result{code, body}
		}()
		// The change exists once the request reached the fake.
		for f.fake.Changes() == nil {
			time.Sleep(time.Millisecond)
		}
		select {
		case r := <-done:
			t.Fatalf("answered before the change ended: %d %s", r.code, r.body)
		case <-time.After(50 * time.Millisecond):
		}
		f.fake.Step(1, "stopping")
		f.fake.Finish(1, failMsg)
		r := <-done
		var c chute.Change
		want, wantCode := chute.ChangeDone, http.StatusOK
		if failMsg != "" {
			// A script must not take a failed change for a success.
			want, wantCode = chute.ChangeError, http.StatusUnprocessableEntity
		}
		if err := json.Unmarshal(r.body, &c); r.code != wantCode || err != nil {
			t.Fatalf("wait: %d %s, want %d", r.code, r.body, wantCode)
		}
		if c.State != want || c.Error != failMsg || len(c.Steps) != 1 {
			t.Errorf("change = %+v, want state %s", c, want)
		}
	}
}

func TestLogs(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		f.fake.AppendLog("web", fmt.Sprint("line ", i))
	}
	code, body := f.do(t, "GET", "/api/v1/chutes/web/logs?tail=2", "")
	if code != 200 || string(body) != "line 3\nline 4\n" {
		t.Errorf("tail=2: %d %q", code, body)
	}
	f.fake.Add(chute.Info{Name: "quiet"})
	code, body = f.do(t, "GET", "/api/v1/chutes/quiet/logs", "")
	if code != 200 || len(body) != 0 {
		t.Errorf("empty log: %d %q", code, body)
	}
}

func TestLogsFollow(t *testing.T) {
	f := newFixture(t)
	f.fake.AppendLog("web", "old")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/v1/chutes/web/logs?tail=1&follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("follow: %d %s", resp.StatusCode, ct)
	}
	lines := bufio.NewScanner(resp.Body)
	for _, want := range []string{"old", "new 1", "new 2"} {
		if want != "old" {
			f.fake.AppendLog("web", want)
		}
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("got %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	cancel() // the handler must notice and return, or srv.Close hangs
}

func TestEnsureOperatorToken(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path, created, err := EnsureOperatorToken(db, dir)
	if err != nil || !created || path != filepath.Join(dir, TokenFile) {
		t.Fatalf("first: %q %v %v", path, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	tok, _ := os.ReadFile(path)
	token := strings.TrimSpace(string(tok))
	if len(token) != 64 {
		t.Errorf("token %q: want 64 hex digits", token)
	}
	var hash string
	if err := db.Get(store.Meta, tokenHashKey, &hash); err != nil || hash != hashToken(token) {
		t.Errorf("stored %q (%v), want the token's hash", hash, err)
	}

	if _, created, err := EnsureOperatorToken(db, dir); err != nil || created {
		t.Errorf("second: %v %v", created, err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(tok) {
		t.Error("token changed on second start")
	}

	// A deleted file does not rotate the token behind the operator's back.
	os.Remove(path)
	if _, created, err := EnsureOperatorToken(db, dir); err != nil || created {
		t.Errorf("after rm: %v %v", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("token file recreated: %v", err)
	}
	var after string
	if db.Get(store.Meta, tokenHashKey, &after); after != hash {
		t.Error("hash changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("leftover files: %v", entries)
	}
}

func TestNoTokenNoEntry(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := New(Config{Chutes: apitest.New(), DB: db})
	for _, tok := range []string{"", hashToken(""), "Bearer "} {
		req := httptest.NewRequest("GET", "/api/v1/chutes", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("token %q with no hash stored: %d", tok, rec.Code)
		}
	}
}
