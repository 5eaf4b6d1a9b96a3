package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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

// clientFrom is an HTTP client whose connections come from ip, a loopback
// address of its own, as another host on the LAN would.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func loginFrom(t *testing.T, f *fixture, ip, password string) *http.Response {
	t.Helper()
	body, _ := json.Marshal(loginRequest{Password: password})
	resp, err := clientFrom(ip).Post(f.srv.URL+"/api/v1/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		errorOf(t, b)
	}
	return resp
}

// Guessing from many addresses, each within its own limit, is stopped by
// the global limit and the lockout; during the lockout the right password
// is refused too, the operator token still works, and the lockout ends.
func TestLoginGuessesFromManyAddresses(t *testing.T) {
	shortFailDelay(t)
	f := newFixture(t)
	const pw = "correct horse battery"
	if code, _ := f.do(t, "PUT", "/api/v1/password", `{"password":"`+pw+`"}`); code != http.StatusOK {
		t.Fatal("set password")
	}
	l := f.srv.Config.Handler.(*server).logins
	now := time.Now()
	l.now = func() time.Time { return now }

	tried := 0
	for i := range 40 {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		for range loginBurst {
			resp := loginFrom(t, f, ip, fmt.Sprintf("guess %d", tried))
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				tried++
			case http.StatusTooManyRequests:
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
					t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
				}
			default:
				t.Fatalf("guess from %s: %d", ip, resp.StatusCode)
			}
		}
	}
	if tried > lockoutAfter {
		t.Errorf("%d of %d guesses from 40 addresses reached the password check, want at most %d", tried, 40*loginBurst, lockoutAfter)
	}
	if resp := loginFrom(t, f, "127.0.0.100", pw); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password during the lockout: %d, want 429", resp.StatusCode)
	}
	if code, _ := f.do(t, "GET", "/api/v1/chutes", ""); code != http.StatusOK {
		t.Errorf("operator token during the lockout: %d, want 200", code)
	}
	now = now.Add(lockoutBase + time.Second)
	if resp := loginFrom(t, f, "127.0.0.101", pw); resp.StatusCode != http.StatusOK {
		t.Errorf("right password after the lockout: %d, want 200", resp.StatusCode)
	}
}

func TestLockoutBacksOff(t *testing.T) {
	l := newLogins()
	now := time.Now()
	l.now = func() time.Time { return now }
	want := lockoutBase
	for round := range 10 {
		for range lockoutAfter {
			l.failed()
		}
		if got := l.until.Sub(now); got != want {
			t.Fatalf("lockout %d lasts %v, want %v", round+1, got, want)
		}
		if wait, _ := l.admit("192.0.2.1"); wait != want {
			t.Fatalf("lockout %d: admit says wait %v, want %v", round+1, wait, want)
		}
		now = l.until
		want = min(2*want, lockoutMax)
	}
	l.succeeded()
	for range lockoutAfter {
		l.failed()
	}
	if got := l.until.Sub(now); got != lockoutBase {
		t.Errorf("lockout after a successful login lasts %v, want %v again", got, lockoutBase)
	}
}
