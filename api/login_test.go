package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func (f *fixture) login(t *testing.T, password string) (int, loginResponse) {
	t.Helper()
	body, _ := json.Marshal(loginRequest{Password: password})
	code, raw := f.doToken(t, "", "POST", "/api/v1/login", string(body))
	var resp loginResponse
	if code == http.StatusOK {
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("login answer %s: %v", raw, err)
		}
	}
	return code, resp
}

func shortFailDelay(t *testing.T) {
	old := loginFailDelay
	loginFailDelay = 10 * time.Millisecond
	t.Cleanup(func() { loginFailDelay = old })
}

func TestLoginWithoutPassword(t *testing.T) {
	shortFailDelay(t)
	f := newFixture(t)
	// No password is set: nothing, not even an empty password, logs in.
	for _, p := range []string{"", "anything-at-all"} {
		if code, _ := f.login(t, p); code != http.StatusUnauthorized {
			t.Errorf("login %q with no password set: %d, want 401", p, code)
		}
	}
}

func TestSetPasswordRefusesWeakOnes(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"", "        ", "short"} {
		body, _ := json.Marshal(loginRequest{Password: p})
		if code, raw := f.do(t, "PUT", "/api/v1/password", string(body)); code != http.StatusBadRequest {
			t.Errorf("set password %q: %d %s, want 400", p, code, raw)
		}
	}
	if code, _ := f.doToken(t, "", "PUT", "/api/v1/password", `{"password":"long enough"}`); code != http.StatusUnauthorized {
		t.Errorf("set password without a token: %d, want 401", code)
	}
	if code, _ := f.do(t, "PUT", "/api/v1/password", `{"pasword":"long enough"}`); code != http.StatusBadRequest {
		t.Errorf("misspelt field: %d, want 400", code)
	}
}

func TestLoginSession(t *testing.T) {
	shortFailDelay(t)
	f := newFixture(t)
	const pw = "correct horse battery"
	if code, raw := f.do(t, "PUT", "/api/v1/password", `{"password":"`+pw+`"}`); code != http.StatusOK {
		t.Fatalf("set password: %d %s", code, raw)
	}

	start := time.Now()
	if code, _ := f.login(t, "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", code)
	}
	if d := time.Since(start); d < loginFailDelay {
		t.Errorf("wrong password answered in %v, before the %v delay", d, loginFailDelay)
	}
	if code, _ := f.login(t, ""); code != http.StatusUnauthorized {
		t.Fatalf("empty password: %d, want 401", code)
	}

	code, sess := f.login(t, pw)
	if code != http.StatusOK || len(sess.Token) != 64 {
		t.Fatalf("login: %d %+v", code, sess)
	}
	if sess.Token == f.token {
		t.Fatal("login handed out the operator token")
	}
	if d := time.Until(sess.Expires); d < SessionTTL-time.Minute || d > SessionTTL {
		t.Errorf("session expires in %v, want %v", d, SessionTTL)
	}
	if code, raw := f.doToken(t, sess.Token, "GET", "/api/v1/chutes", ""); code != http.StatusOK {
		t.Errorf("session token: %d %s", code, raw)
	}
	if code, _ := f.do(t, "GET", "/api/v1/chutes", ""); code != http.StatusOK {
		t.Errorf("operator token after a login: %d", code)
	}
	// A session cannot change the password, else a stolen browser token
	// would outlive the password it came from.
	if code, _ := f.doToken(t, sess.Token, "PUT", "/api/v1/password", `{"password":"another password"}`); code != http.StatusForbidden {
		t.Errorf("session sets the password: %d, want 403", code)
	}
	// A new password ends the sessions.
	if code, _ := f.do(t, "PUT", "/api/v1/password", `{"password":"another password"}`); code != http.StatusOK {
		t.Fatalf("change password: %d", code)
	}
	if code, _ := f.doToken(t, sess.Token, "GET", "/api/v1/chutes", ""); code != http.StatusUnauthorized {
		t.Errorf("session after a password change: %d, want 401", code)
	}
	if code, _ := f.login(t, pw); code != http.StatusUnauthorized {
		t.Errorf("old password: %d, want 401", code)
	}
}

func TestSessionExpires(t *testing.T) {
	l := newLogins()
	now := time.Now()
	l.now = func() time.Time { return now }
	tok, _, err := l.newSession()
	if err != nil {
		t.Fatal(err)
	}
	if !l.valid(tok) || l.valid(strings.ToUpper(tok)) || l.valid("") {
		t.Fatal("session check")
	}
	now = now.Add(SessionTTL)
	if l.valid(tok) {
		t.Error("session valid after its TTL")
	}
}

func TestLoginRateLimit(t *testing.T) {
	shortFailDelay(t)
	f := newFixture(t)
	const pw = "correct horse battery"
	if code, _ := f.do(t, "PUT", "/api/v1/password", `{"password":"`+pw+`"}`); code != http.StatusOK {
		t.Fatal("set password")
	}
	for i := 0; i < loginBurst; i++ {
		if code, _ := f.login(t, "guess"); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	// Out of attempts: even the right password waits.
	if code, _ := f.login(t, pw); code != http.StatusTooManyRequests {
		t.Fatalf("login past the limit: %d, want 429", code)
	}
}

func TestRateLimitRefills(t *testing.T) {
	l := newLogins()
	now := time.Now()
	l.now = func() time.Time { return now }
	for i := 0; i < loginBurst; i++ {
		if !l.allow("192.0.2.1") {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if l.allow("192.0.2.1") {
		t.Fatal("attempt past the burst allowed")
	}
	if !l.allow("192.0.2.2") {
		t.Fatal("another client refused")
	}
	now = now.Add(loginRefill)
	if !l.allow("192.0.2.1") || l.allow("192.0.2.1") {
		t.Fatal("want exactly one attempt after one refill period")
	}
}
