package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// cutBound is how long after its token ended a request under way may still
// run, seen from the client: the API cuts it before the revocation
// answers, or within liveCheck of a token ending behind its back.
const cutBound = 3 * time.Second

// underWay is a request started in the background, by token.
type underWay struct {
	resp chan *http.Response
	err  chan error
}

func (ts *tenants) start(t *testing.T, token, method, path string, body io.Reader) underWay {
	t.Helper()
	// Canceled when the test ends, before the server closes: a request
	// the test failed to see cut must not hold the close up.
	req, err := http.NewRequestWithContext(t.Context(), method, ts.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	u := underWay{resp: make(chan *http.Response, 1), err: make(chan error, 1)}
	go func() {
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			u.err <- err
			return
		}
		u.resp <- resp
	}()
	return u
}

// answer is the status the request ends with, within d.
func (u underWay) answer(t *testing.T, d time.Duration) (int, string) {
	t.Helper()
	select {
	case resp := <-u.resp:
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	case err := <-u.err:
		t.Fatalf("request failed: %v", err)
	case <-time.After(d):
		t.Fatalf("still under way after %s", d)
	}
	return 0, ""
}

// follow starts following the log of name and reads its first line.
func (ts *tenants) follow(t *testing.T, token, name string) *bufio.Scanner {
	t.Helper()
	u := ts.start(t, token, "GET", "/api/v1/chutes/"+name+"/logs?tail=1&follow=1", nil)
	var resp *http.Response
	select {
	case resp = <-u.resp:
	case err := <-u.err:
		t.Fatal(err)
	case <-time.After(cutBound):
		t.Fatal("no answer to the follow")
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("follow %s: %d", name, resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() {
		t.Fatalf("follow %s: no first line: %v", name, lines.Err())
	}
	return lines
}

// ends checks that a followed log ends within d, with no more lines.
func ends(t *testing.T, lines *bufio.Scanner, d time.Duration) {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- lines.Scan() }()
	select {
	case more := <-done:
		if more {
			t.Errorf("the follow went on: %q", lines.Text())
		}
	case <-time.After(d):
		t.Fatalf("the follow still runs %s after its token ended", d)
	}
}

// Revoking a developer's token ends what runs with it at once: a followed
// log, a ?wait= on a change and an upload being sent. Its other token's
// requests go on.
func TestRevocationCutsRequestsUnderWay(t *testing.T) {
	ts := newTenants(t)
	ts.fake.AppendLog("aa", "first")
	var other newToken
	if code, body := ts.do(t, "POST", "/api/v1/developers/alpha/tokens", ""); code != http.StatusCreated || json.Unmarshal(body, &other) != nil {
		t.Fatalf("second token: %d %s", code, body)
	}
	followed := ts.follow(t, ts.alpha, "aa")
	kept := ts.follow(t, other.Token, "aa")

	ts.fake.Hold = true
	waiting := ts.start(t, ts.alpha, "POST", "/api/v1/chutes/aa/restart?wait=1", nil)
	pr, pw := io.Pipe()
	defer pw.Close()
	uploading := ts.start(t, ts.alpha, "POST", "/api/v1/chutes", pr)
	if _, err := pw.Write([]byte("up 1.0\n")); err != nil { // the server reads it
		t.Fatal(err)
	}
	// The wait is under way once its change is.
	deadline := time.Now().Add(cutBound)
	for len(ts.fake.Changes()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	if code, body := ts.do(t, "DELETE", "/api/v1/developers/alpha/tokens/"+ts.alphaID, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	ends(t, followed, cutBound)
	if code, body := waiting.answer(t, cutBound); code != http.StatusUnauthorized || !strings.Contains(errorOf(t, []byte(body)), "revoked") {
		t.Errorf("the wait: %d %s, want 401", code, body)
	}
	if code, body := uploading.answer(t, cutBound); code != http.StatusUnauthorized {
		t.Errorf("the upload: %d %s, want 401", code, body)
	}
	if _, err := ts.fake.Get("up"); err == nil {
		t.Error("the cut upload was installed")
	}
	ts.fake.AppendLog("aa", "second")
	if !kept.Scan() || kept.Text() != "second" {
		t.Errorf("the other token's follow: %q %v", kept.Text(), kept.Err())
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if log := strings.Join(ts.logged, "\n"); !strings.Contains(log, `refused developer:alpha: POST "/api/v1/chutes/aa/restart": 401 `+errCredentialEnded.Error()) {
		t.Errorf("the cut is not in the log with actor and reason:\n%s", log)
	}
}

// A token that expires ends what runs with it when it expires; deleting a
// developer ends what runs with any of its tokens.
func TestExpiryAndDeletionCutRequestsUnderWay(t *testing.T) {
	ts := newTenants(t)
	ts.fake.AppendLog("aa", "first")
	ts.fake.AppendLog("bb", "first")
	exp := time.Now().Add(time.Second)
	var tok newToken
	if code, body := ts.do(t, "POST", "/api/v1/developers/alpha/tokens", `{"expires":"`+exp.UTC().Format(time.RFC3339Nano)+`"}`); code != http.StatusCreated || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("expiring token: %d %s", code, body)
	}
	expiring := ts.follow(t, tok.Token, "aa")
	ends(t, expiring, time.Until(exp)+cutBound)

	followed := ts.follow(t, ts.beta, "bb")
	if code, body := ts.do(t, "DELETE", "/api/v1/developers/beta?chutes=remove", ""); code != 200 {
		t.Fatalf("delete beta: %d %s", code, body)
	}
	ends(t, followed, cutBound)
}

// A chute's request under way ends when the chute's token is replaced (a
// restart) or dropped (a stop), which the manager does without telling
// the API: within liveCheck.
func TestChuteTokenEndCutsRequestsUnderWay(t *testing.T) {
	ts := newTenants(t)
	for _, next := range []string{"rotated", ""} {
		req := httptest.NewRequest("GET", "/api/v1/self", nil)
		w := httptest.NewRecorder()
		r, untrack := ts.h.track(w, req, ts.chute, identity{chute: "aa"}, nil)
		ts.h.recheck()
		if r.Context().Err() != nil {
			t.Fatal("cut while its token is good")
		}
		ts.fake.SetToken("aa", next)
		select {
		case <-r.Context().Done():
			if !ended(r.Context()) {
				t.Errorf("cut with %v", context.Cause(r.Context()))
			}
		case <-time.After(liveCheck + cutBound):
			t.Errorf("token set to %q: the request goes on", next)
		}
		untrack()
		ts.fake.SetToken("aa", ts.chute)
	}
	ts.h.live.mu.Lock()
	defer ts.h.live.mu.Unlock()
	if n := len(ts.h.live.reqs); n != 0 {
		t.Errorf("%d requests still tracked", n)
	}
}

// Under the server's progress rule, which sets the connection's read
// deadlines itself, an upload stalled mid-body by a developer whose token
// is revoked is still cut at once, not after the stall timeout.
func TestRevocationCutsStalledUploadUnderProgressRule(t *testing.T) {
	s := newLiveServer(t, Limits{StallTimeout: time.Minute})
	var dev newDeveloper
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/v1/developers", strings.NewReader(`{"name":"acme","allow":{"unsigned":true}}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()
	if dev.Token == "" {
		t.Fatalf("create developer: %s", resp.Status)
	}
	c := s.dialFrom(t, "127.0.0.2")
	defer c.Close()
	fmt.Fprintf(c, "POST /api/v1/chutes HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\ndb 1.0\n", dev.Token)
	// The upload is being read once it counts against the limits.
	deadline := time.Now().Add(cutBound)
	for time.Now().Before(deadline) {
		s.api.uploads.mu.Lock()
		n := s.api.uploads.all
		s.api.uploads.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.api.tenants.RevokeToken("acme", dev.TokenID); err != nil {
		t.Fatal(err)
	}
	s.api.recheck() // as the revocation through the API does
	resp2, body := readStatus(t, c, cutBound)
	if resp2.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("the stalled upload: %s %s", resp2.Status, body)
	}
}
