package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/store"
	"paradrop/usage"
)

// GET /self tells a chute what the issue names of itself, and nothing of
// the host: not its pid there, its manifest as kept, its owner or signer,
// its last error (which may name host paths), nor the gateway's CPU.
func TestSelfHidesHost(t *testing.T) {
	ts := newTenants(t)
	started := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	ts.fake.Add(chute.Info{
		Name: "aa", Owner: "alpha", Version: "1.0", State: chute.Running, Desired: chute.Running,
		Pid: 4242, StartedAt: &started, Restarts: 2, LastExit: "exit status 1 (/var/lib/paradrop/x)",
		Error: "open /var/lib/paradrop/chutes/aa/rootfs: no such file", Manifest: map[string]any{"command": []string{"/secret"}},
		IP: "10.42.0.2", IPv6: "fd70:6472:6f70::2", IPv6Global: "2001:db8:6400::2", MAC: "02:00:00:00:00:02", SignedBy: "RWQF6LRCGDWKJ",
	})
	deadline := time.Now().Add(time.Minute).UTC()
	ts.fake.SetPendingPolicy("aa", chute.PolicyRequest{Resources: manifest.Resources{CPUMax: 0.5}, Grace: manifest.Duration(time.Minute), Deadline: deadline})
	ts.fake.SetUsage(usage.Series{Interval: time.Second, Samples: []usage.Sample{{T: 7, Chutes: map[string]usage.ChuteSample{
		"aa": {CPU: 12.5, CPUGateway: 6.25, Mem: 1 << 20, Pids: 3},
	}}}})
	code, body := ts.doToken(t, ts.chute, "GET", "/api/v1/self", "")
	if code != http.StatusOK {
		t.Fatalf("GET /self: %d %s", code, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return strings.Join(ks, " ")
	}
	if k := keys(got); k != "ip ipv6 ipv6_global name policy_request resources restarts started_at state usage version" {
		t.Errorf("GET /self has fields %q:\n%s", k, body)
	}
	u, _ := got["usage"].(map[string]any)
	if k := keys(u); k != "cpu disk mem mem_limit oom_kills pids rx_bps t tx_bps" {
		t.Errorf("its usage has fields %q", k)
	}
	for _, host := range []string{"4242", "/var/lib", "/secret", "alpha", "RWQF6LRCGDWKJ", "6.25", "02:00:00"} {
		if strings.Contains(string(body), host) {
			t.Errorf("GET /self tells the chute %q:\n%s", host, body)
		}
	}
	var self selfInfo
	if err := json.Unmarshal(body, &self); err != nil || self.Name != "aa" || self.IP != "10.42.0.2" || self.IPv6 != "fd70:6472:6f70::2" || self.IPv6Global != "2001:db8:6400::2" || self.Restarts != 2 ||
		self.PolicyRequest == nil || !self.PolicyRequest.Deadline.Equal(deadline) || self.PolicyRequest.Resources.CPUMax != 0.5 ||
		self.Usage == nil || self.Usage.CPU != 12.5 || self.Resources.Memory == 0 {
		t.Errorf("GET /self: %s (%v)", body, err)
	}
}

// A chute told it moves says it is ready once: a second ack, or one when
// it is not told, is a 409 with a JSON error; nobody but the chute may.
func TestSelfHandoverAck(t *testing.T) {
	ts := newTenants(t)
	ack := func(token string) (int, []byte) {
		t.Helper()
		return ts.doToken(t, token, "POST", "/api/v1/self/migrate/ack", "")
	}
	ts.fake.SetHandover("aa")
	for who, tok := range map[string]string{"the operator": ts.token, "a developer": ts.alpha} {
		if code, body := ack(tok); code != http.StatusForbidden {
			t.Errorf("%s acks: %d %s, want 403", who, code, body)
		}
	}
	if code, body := ack(ts.chute); code != http.StatusOK || !strings.Contains(string(body), `"acknowledged": true`) {
		t.Errorf("the ack: %d %s", code, body)
	}
	if code, body := ack(ts.chute); code != http.StatusConflict || !strings.Contains(string(body), `"error"`) {
		t.Errorf("a second ack: %d %s", code, body)
	}
}

// The ack: the request waiting, by its deadline or none named; a stale
// deadline, a second ack, a bad body are refused with a JSON error, and
// nobody but a chute may ack.
func TestSelfPolicyAck(t *testing.T) {
	ts := newTenants(t)
	deadline := time.Now().Add(time.Minute).UTC()
	ts.fake.SetPendingPolicy("aa", chute.PolicyRequest{Deadline: deadline})
	ack := func(token, body string) (int, []byte) {
		t.Helper()
		return ts.doToken(t, token, "POST", "/api/v1/self/policy/ack", body)
	}
	for who, tok := range map[string]string{"the operator": ts.token, "a developer": ts.alpha} {
		if code, body := ack(tok, ""); code != http.StatusForbidden {
			t.Errorf("%s acks: %d %s, want 403", who, code, body)
		}
	}
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"deadline":"` + deadline.Add(-time.Second).Format(time.RFC3339Nano) + `"}`, http.StatusConflict},
		{`{"deadline":"soon"}`, http.StatusBadRequest},
		{`{"deadline":"0001-01-01T00:00:00Z"}`, http.StatusBadRequest},
		{`{"deadlines":"x"}`, http.StatusBadRequest},
		{`{"deadline":null} {}`, http.StatusBadRequest},
		{`{"deadline":"` + strings.Repeat("9", 8<<10) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		code, body := ack(ts.chute, c.body)
		if code != c.want {
			t.Errorf("ack %.60s: %d %s, want %d", c.body, code, body, c.want)
		}
		errorOf(t, body)
	}
	if n := ts.fake.Acks("aa"); n != 0 {
		t.Fatalf("%d acks taken by refused calls", n)
	}
	code, body := ack(ts.chute, `{"deadline":"`+deadline.Format(time.RFC3339Nano)+`"}`)
	var got struct{ Acknowledged chute.PolicyRequest }
	if code != http.StatusOK || json.Unmarshal(body, &got) != nil || !got.Acknowledged.Deadline.Equal(deadline) {
		t.Fatalf("ack: %d %s", code, body)
	}
	code, body = ack(ts.chute, "")
	if code != http.StatusConflict || !strings.Contains(errorOf(t, body), "no such policy request") {
		t.Errorf("ack with nothing waiting: %d %s, want 409", code, body)
	}
	ts.fake.SetPendingPolicy("aa", chute.PolicyRequest{Deadline: deadline.Add(time.Hour)})
	if code, body := ack(ts.chute, ""); code != http.StatusOK {
		t.Errorf("ack naming no deadline: %d %s", code, body)
	}
	if n := ts.fake.Acks("aa"); n != 2 {
		t.Errorf("%d acks taken, want 2", n)
	}
}

// The chute network's listener serves chutes alone, each from its own
// address: no other identity, no login, no token from elsewhere.
func TestForChuteNetwork(t *testing.T) {
	ts := newTenants(t)
	ts.fake.Add(chute.Info{Name: "aa", Owner: "alpha", Version: "1.0", State: chute.Running, IP: "10.131.0.11",
		IPv6: "fd70:6472:6f70::b", IPv6Global: "2001:db8:6400::b"})
	ts.fake.Add(chute.Info{Name: "bb", Owner: "beta", Version: "1.0", State: chute.Running, IP: "10.131.0.12", IPv6: "fd70:6472:6f70::c"})
	ts.fake.SetToken("bb", "chute-bb-token")
	h := ForChuteNetwork(ts.h, ts.fake)
	do := func(from, token, method, path, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = from
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			errorOf(t, rec.Body.Bytes())
		}
		return rec.Code, rec.Body.String()
	}
	const aa, bb = "10.131.0.11:40000", "10.131.0.12:40000"
	for _, c := range []struct {
		what, from, token, method, path, body string
		want                                  int
		has                                   string
	}{
		{"chute aa about itself", aa, ts.chute, "GET", "/api/v1/self", "", 200, `"name": "aa"`},
		{"chute bb about itself", bb, "chute-bb-token", "GET", "/api/v1/self", "", 200, `"name": "bb"`},
		{"aa's token from bb's address", bb, ts.chute, "GET", "/api/v1/self", "", 401, ""},
		{"aa's token from the LAN", "198.51.100.20:40000", ts.chute, "GET", "/api/v1/self", "", 401, ""},
		{"chute aa over IPv6", "[fd70:6472:6f70::b]:40000", ts.chute, "GET", "/api/v1/self", "", 200, `"name": "aa"`},
		{"chute aa from its global address", "[2001:db8:6400::b]:40000", ts.chute, "GET", "/api/v1/self", "", 200, `"name": "aa"`},
		{"aa's token from bb's IPv6 address", "[fd70:6472:6f70::c]:40000", ts.chute, "GET", "/api/v1/self", "", 401, ""},
		{"aa's token from its IPv4 address mapped", "[::ffff:10.131.0.11]:40000", ts.chute, "GET", "/api/v1/self", "", 200, `"name": "aa"`},
		{"aa's token from the LAN's IPv6", "[2001:db8:1::20]:40000", ts.chute, "GET", "/api/v1/self", "", 401, ""},
		{"chute aa, another route", aa, ts.chute, "GET", "/api/v1/chutes", "", 403, ""},
		{"chute aa, another chute", aa, ts.chute, "GET", "/api/v1/chutes/bb", "", 404, ""},
		{"chute aa acks", aa, ts.chute, "POST", "/api/v1/self/policy/ack", "", 200, ""},
		{"the operator", aa, ts.token, "GET", "/api/v1/info", "", 401, ""},
		{"a developer", aa, ts.alpha, "GET", "/api/v1/chutes", "", 401, ""},
		{"no token", aa, "", "GET", "/api/v1/health", "", 401, ""},
		{"a password login", aa, "", "POST", "/api/v1/login", `{"password":"x"}`, 401, ""},
	} {
		code, body := do(c.from, c.token, c.method, c.path, c.body)
		if code != c.want || !strings.Contains(body, c.has) {
			t.Errorf("%s: %d %s, want %d", c.what, code, body, c.want)
		}
	}
}

// FuzzPolicyAck: whatever a chute sends as an ack, it is taken (empty, or
// naming the request waiting) or refused with a 4xx, never a 5xx.
func FuzzPolicyAck(f *testing.F) {
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)
	for _, s := range []string{"", " \n", `{}`, `{"deadline":null}`, `{"deadline":"` + deadline.Format(time.RFC3339Nano) + `"}`,
		`{"deadline":"2030-01-02T04:04:05.678901234+01:00"}`, `{"deadline":"soon"}`, `{"deadline":1}`, `{"deadline":"0001-01-01T00:00:00Z"}`,
		`{} {}`, `[]`, "\x00", `{"deadline":"2030-01-02T03:04:05Z","x":1}`} {
		f.Add([]byte(s))
	}
	db, err := store.Open(filepath.Join(f.TempDir(), "state.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	if err := db.Put(store.Meta, tokenHashKey, hashToken("operator")); err != nil {
		f.Fatal(err)
	}
	fake := apitest.New()
	fake.Add(chute.Info{Name: "aa", Version: "1"})
	fake.SetToken("aa", "chute")
	h := New(Config{Chutes: fake, DB: db, Started: time.Now(), MaxUpload: 64 << 10})
	f.Fuzz(func(t *testing.T, body []byte) {
		fake.SetPendingPolicy("aa", chute.PolicyRequest{Deadline: deadline})
		before := fake.Acks("aa")
		req := httptest.NewRequest("POST", "/api/v1/self/policy/ack", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer chute")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		taken := fake.Acks("aa") - before
		switch {
		case rec.Code == 200 && taken == 1:
			var got struct{ Acknowledged chute.PolicyRequest }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !got.Acknowledged.Deadline.Equal(deadline) {
				t.Fatalf("%q: acknowledged %s (%v)", body, rec.Body, err)
			}
		case rec.Code/100 == 4 && taken == 0:
		default:
			t.Fatalf("%q: %d %s, %d acks taken", body, rec.Code, rec.Body, taken)
		}
	})
}
