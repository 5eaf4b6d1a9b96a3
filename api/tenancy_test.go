package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/usage"
)

// tenants is a gateway with the operator's chute "op", chutes "aa" of
// developer alpha and "bb" of developer beta, a change of each, and
// developer gamma with no chute.
type tenants struct {
	*fixture
	h       *server
	alpha   string // tokens
	beta    string
	alphaID string // the id of alpha's token
	chute   string // the token of the running chute aa
	revoked string // a token of alpha's, revoked
	expired string // a token of alpha's that has expired
	change  map[string]uint64
	mu      sync.Mutex
	logged  []string
}

func newTenants(t *testing.T) *tenants {
	t.Helper()
	db, tok := tokenDB(t)
	fake := apitest.New()
	ts := &tenants{change: map[string]uint64{}}
	logf := func(format string, args ...any) {
		ts.mu.Lock()
		ts.logged = append(ts.logged, fmt.Sprintf(format, args...))
		ts.mu.Unlock()
	}
	h := New(Config{
		Chutes: fake, DB: db, Version: "test", Started: time.Now(), MaxUpload: 64 << 10, Logf: logf,
		Network: fakeNetwork{"op": {}, "aa": {}, "bb": {}}, Metrics: func(*metrics.Set) {},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ts.fixture = &fixture{srv: srv, fake: fake, token: tok}
	ts.h = h.(*server)
	var dev newDeveloper
	for _, name := range []string{"alpha", "beta", "gamma"} {
		code, body := ts.do(t, "POST", "/api/v1/developers", `{"name":"`+name+`","quota":{"chutes":3,"memory":"256Mi"}}`)
		if code != http.StatusCreated || json.Unmarshal(body, &dev) != nil || dev.Name != name || dev.Token == "" {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
		switch name {
		case "alpha":
			ts.alpha, ts.alphaID = dev.Token, dev.TokenID
		case "beta":
			ts.beta = dev.Token
		}
	}
	for c, owner := range map[string]chute.Owner{"op": "", "aa": "alpha", "bb": "beta"} {
		fake.Add(chute.Info{Name: c, Owner: owner, Version: "1.0", State: chute.Running, Desired: chute.Running})
		ch, err := fake.Start(c, "operator")
		if err != nil {
			t.Fatal(err)
		}
		ts.change[c] = ch.ID
	}
	ts.chute = "chute-aa-token"
	fake.SetToken("aa", ts.chute)
	fake.SetPendingPolicy("aa", chute.PolicyRequest{Deadline: time.Now().Add(time.Minute)})
	fake.SetHandover("aa")
	fake.SetToken("bb", "chute-bb-token")
	var made newToken
	if code, b := ts.do(t, "POST", "/api/v1/developers/alpha/tokens", ""); code != http.StatusCreated || json.Unmarshal(b, &made) != nil {
		t.Fatalf("token: %d %s", code, b)
	}
	ts.revoked = made.Token
	if code, b := ts.do(t, "DELETE", "/api/v1/developers/alpha/tokens/"+made.ID, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	ts.mu.Lock()
	ts.logged = nil // the fixture's own
	ts.mu.Unlock()
	return ts
}

// expire sets ts.expired to a token of alpha's that has expired.
func (ts *tenants) expire(t *testing.T) {
	t.Helper()
	var made newToken
	expires := time.Now().Add(100 * time.Millisecond)
	body := `{"expires":"` + expires.UTC().Format(time.RFC3339Nano) + `"}`
	if code, b := ts.do(t, "POST", "/api/v1/developers/alpha/tokens", body); code != http.StatusCreated || json.Unmarshal(b, &made) != nil {
		t.Fatalf("token %s: %d %s", body, code, b)
	}
	ts.expired = made.Token
	time.Sleep(time.Until(expires))
}

// Who may call a route, by its pattern.
type reach int

const (
	anyone      reach = iota // no token needed
	operator                 // the operator alone; developers get 403
	everyone                 // every identity, each seeing its own
	chuteOwner               // the chute's owner and the operator; 404 for others
	changeOwner              // as chuteOwner, for a change of the chute; the handler decides
	selfOnly                 // a chute, about itself; 403 for everyone else
)

// route is one of every route with a request that succeeds for who may
// make it; CHUTE in it is the chute it acts on.
var routes = []struct {
	pattern      string
	reach        reach
	method, path string
	body         string
}{
	{healthPattern, anyone, "GET", "/api/v1/health", ""},
	{loginPattern, anyone, "POST", "/api/v1/login", `{"password":"x"}`},
	{"GET /api/v1/info", everyone, "GET", "/api/v1/info", ""},
	{"GET /api/v1/chutes", everyone, "GET", "/api/v1/chutes", ""},
	{"POST /api/v1/chutes", everyone, "POST", "/api/v1/chutes", "new 1.0\n"},
	{"GET /api/v1/self", selfOnly, "GET", "/api/v1/self", ""},
	{"POST /api/v1/self/policy/ack", selfOnly, "POST", "/api/v1/self/policy/ack", ""},
	{"POST /api/v1/self/migrate/ack", selfOnly, "POST", "/api/v1/self/migrate/ack", ""},
	{"GET /api/v1/changes", everyone, "GET", "/api/v1/changes", ""},
	{"GET /api/v1/changes/{id}", changeOwner, "GET", "/api/v1/changes/CHANGE", ""},
	{"GET /api/v1/chutes/{name}", chuteOwner, "GET", "/api/v1/chutes/CHUTE", ""},
	{"PUT /api/v1/chutes/{name}", chuteOwner, "PUT", "/api/v1/chutes/CHUTE", "CHUTE 2.0\n"},
	{"DELETE /api/v1/chutes/{name}", chuteOwner, "DELETE", "/api/v1/chutes/CHUTE", ""},
	{"POST /api/v1/chutes/{name}/start", chuteOwner, "POST", "/api/v1/chutes/CHUTE/start", ""},
	{"POST /api/v1/chutes/{name}/stop", chuteOwner, "POST", "/api/v1/chutes/CHUTE/stop", ""},
	{"POST /api/v1/chutes/{name}/restart", chuteOwner, "POST", "/api/v1/chutes/CHUTE/restart", ""},
	{"GET /api/v1/chutes/{name}/logs", chuteOwner, "GET", "/api/v1/chutes/CHUTE/logs", ""},
	{"POST /api/v1/chutes/{name}/migrate", chuteOwner, "POST", "/api/v1/chutes/CHUTE/migrate", `{"to":"http://127.0.0.1:9","token":"t"}`},
	{"POST /api/v1/chutes/import", everyone, "POST", "/api/v1/chutes/import", "new 1.0\n"},
	{"GET /api/v1/chutes/{name}/usage", chuteOwner, "GET", "/api/v1/chutes/CHUTE/usage", ""},
	{"GET /api/v1/chutes/{name}/resources", chuteOwner, "GET", "/api/v1/chutes/CHUTE/resources", ""},
	{"PUT /api/v1/chutes/{name}/resources", chuteOwner, "PUT", "/api/v1/chutes/CHUTE/resources", `{"memory":"32Mi"}`},
	{"GET /api/v1/chutes/{name}/flows", chuteOwner, "GET", "/api/v1/chutes/CHUTE/flows", ""},
	{"GET /api/v1/flows", operator, "GET", "/api/v1/flows", ""},
	{"GET /api/v1/hosts", operator, "GET", "/api/v1/hosts", ""},
	{"GET /api/v1/gateway/usage", operator, "GET", "/api/v1/gateway/usage", ""},
	{metricsPattern, operator, "GET", "/metrics", ""},
	{passwordPattern, operator, "PUT", "/api/v1/password", `{"password":"a long enough password"}`},
	{"POST /api/v1/developers", operator, "POST", "/api/v1/developers", `{"name":"delta"}`},
	{"GET /api/v1/developers", operator, "GET", "/api/v1/developers", ""},
	{"GET /api/v1/developers/{dev}", operator, "GET", "/api/v1/developers/alpha", ""},
	{"PUT /api/v1/developers/{dev}", operator, "PUT", "/api/v1/developers/alpha", `{"quota":{"chutes":9}}`},
	{"DELETE /api/v1/developers/{dev}", operator, "DELETE", "/api/v1/developers/gamma", ""},
	{"POST /api/v1/developers/{dev}/tokens", operator, "POST", "/api/v1/developers/alpha/tokens", ""},
	{"GET /api/v1/whoami", everyone, "GET", "/api/v1/whoami", ""},
	{"DELETE /api/v1/developers/{dev}/tokens/{id}", operator, "DELETE", "/api/v1/developers/beta/tokens/TOKEN", ""},
}

// Every route the API serves is in the matrix, with the reach it has.
func TestRoutesAllInMatrix(t *testing.T) {
	ts := newTenants(t)
	var served, listed []string
	for p := range ts.h.scopes {
		served = append(served, p)
	}
	want := map[reach]scope{anyone: scopeOpen, operator: scopeOperator, everyone: scopeAny, chuteOwner: scopeChute, changeOwner: scopeAny, selfOnly: scopeSelf}
	for _, r := range routes {
		listed = append(listed, r.pattern)
		if got := ts.h.scopes[r.pattern]; got != want[r.reach] {
			t.Errorf("%s: scope %d, the matrix says %d", r.pattern, got, want[r.reach])
		}
		// The row's request is the route's: the mux takes it there.
		req := httptest.NewRequest(r.method, r.path, nil)
		if _, p := ts.h.mux.Handler(req); p != r.pattern {
			t.Errorf("%s %s goes to %q, not %q", r.method, r.path, p, r.pattern)
		}
	}
	sort.Strings(served)
	sort.Strings(listed)
	if strings.Join(served, "\n") != strings.Join(listed, "\n") {
		t.Errorf("routes served:\n%s\nroutes in the matrix:\n%s", strings.Join(served, "\n"), strings.Join(listed, "\n"))
	}
}

// The matrix: every route against the operator, developers alpha and beta,
// the token of chute aa (on aa, and on the others), no token, a revoked
// token and an expired one, on each one's chute, each on a fresh gateway.
// Every refusal of anyone but the operator is in the log, with who and
// why.
func TestTenancyMatrix(t *testing.T) {
	for _, r := range routes {
		for _, caller := range []string{"operator", "alpha", "beta", "chute", "none", "revoked", "expired"} {
			targets := []string{""}
			owned := r.reach == chuteOwner || r.reach == changeOwner
			if owned {
				targets = []string{"op", "aa", "bb"}
			}
			for _, target := range targets {
				t.Run(fmt.Sprintf("%s/%s/%s", r.pattern, caller, target), func(t *testing.T) {
					ts := newTenants(t)
					if caller == "expired" {
						ts.expire(t)
					}
					token := map[string]string{"operator": ts.token, "alpha": ts.alpha, "beta": ts.beta, "chute": ts.chute, "revoked": ts.revoked, "expired": ts.expired}[caller]
					if r.reach == anyone {
						token = ""
					}
					nobody := r.reach == anyone || caller == "none" || caller == "revoked" || caller == "expired"
					path := strings.ReplaceAll(r.path, "CHUTE", target)
					path = strings.ReplaceAll(path, "CHANGE", fmt.Sprint(ts.change[target]))
					tokID := ts.alphaID
					if d, err := ts.h.tenants.Get("beta"); err == nil {
						tokID = d.Tokens[0].ID
					}
					path = strings.ReplaceAll(path, "TOKEN", tokID)
					body := strings.ReplaceAll(r.body, "CHUTE", target)
					code, got := ts.doToken(t, token, r.method, path, body)

					owner := map[string]string{"op": "operator", "aa": "alpha", "bb": "beta"}[target]
					var want int
					switch {
					case r.reach == anyone && r.pattern == loginPattern:
						want = http.StatusUnauthorized // no password set: reached, and refused
					case r.reach == anyone:
						want = 200
					case nobody:
						want = http.StatusUnauthorized
					case caller == "chute":
						// Its own info, else 403; another chute is
						// one that does not exist.
						switch {
						case r.reach == selfOnly:
							want = 200
						case r.reach == chuteOwner && target != "aa":
							want = http.StatusNotFound
						default:
							want = http.StatusForbidden
						}
					case r.reach == selfOnly:
						want = http.StatusForbidden
					case r.reach == everyone, caller == "operator", owned && owner == caller:
						want = 200
					case r.reach == operator:
						want = http.StatusForbidden
					default:
						want = http.StatusNotFound
					}
					if want == 200 && code/100 != 2 || want != 200 && code != want {
						t.Fatalf("%s %s as %s: %d %s, want %d", r.method, path, caller, code, got, want)
					}
					if code/100 != 2 {
						errorOf(t, got)
					}
					actor := map[string]string{"operator": "operator", "alpha": "developer:alpha", "beta": "developer:beta", "chute": "chute:aa"}[caller]
					if nobody {
						actor = "anonymous"
					}
					if code >= 400 && actor != "operator" {
						line := fmt.Sprintf("refused %s: %s %q: %d %s", actor, r.method, path, code, errorOf(t, got))
						if want == http.StatusNotFound && r.reach == chuteOwner && caller != "chute" {
							// The log says whose it is; the answer does not.
							line += fmt.Sprintf(" (it is %s's)", map[string]string{"op": "the operator", "aa": "developer alpha", "bb": "developer beta"}[target])
						}
						ts.mu.Lock()
						logged := strings.Join(ts.logged, "\n")
						ts.mu.Unlock()
						if !strings.Contains(logged, line) {
							t.Errorf("refusal not logged with its actor and reason: %q not in\n%s", line, logged)
						}
					}
					if want == http.StatusNotFound {
						// Exactly as a chute (or change) that does not
						// exist: same status, same words.
						gone := strings.ReplaceAll(r.path, "CHUTE", "zz")
						gone = strings.ReplaceAll(gone, "CHANGE", "999")
						_, none := ts.doToken(t, token, r.method, gone, strings.ReplaceAll(r.body, "CHUTE", "zz"))
						mine := strings.ReplaceAll(strings.ReplaceAll(string(got), `\"`+target+`\"`, `\"zz\"`), fmt.Sprint(ts.change[target]), "999")
						if mine != string(none) {
							t.Errorf("another's answers %s, a missing one %s", got, none)
						}
					}
				})
			}
		}
	}
}

// A developer sees its own chutes and changes, installs chutes as its own,
// and counts only its own in info.
func TestDeveloperSeesItsOwn(t *testing.T) {
	ts := newTenants(t)
	var list struct{ Chutes []chute.Info }
	code, body := ts.doToken(t, ts.alpha, "GET", "/api/v1/chutes", "")
	if json.Unmarshal(body, &list) != nil || code != 200 || len(list.Chutes) != 1 || list.Chutes[0].Name != "aa" {
		t.Fatalf("alpha's list: %d %s", code, body)
	}
	var changes struct{ Changes []chute.Change }
	_, body = ts.doToken(t, ts.alpha, "GET", "/api/v1/changes", "")
	if json.Unmarshal(body, &changes) != nil || len(changes.Changes) != 1 || changes.Changes[0].Chute != "aa" {
		t.Fatalf("alpha's changes: %s", body)
	}
	var info infoResponse
	_, body = ts.doToken(t, ts.beta, "GET", "/api/v1/info", "")
	if json.Unmarshal(body, &info) != nil || info.Chutes != 1 {
		t.Fatalf("beta's info: %s", body)
	}
	if code, body := ts.doToken(t, ts.alpha, "POST", "/api/v1/chutes?wait=1", "mine 1.0\n"); code != 200 {
		t.Fatalf("install: %d %s", code, body)
	}
	if in, _ := ts.fake.Get("mine"); in.Owner != "alpha" {
		t.Errorf("installed by alpha, owner %q", in.Owner)
	}
	// Each change names who asked for it.
	var ch chute.Change
	if _, body := ts.do(t, "POST", "/api/v1/chutes/mine/stop?wait=1", ""); json.Unmarshal(body, &ch) != nil || ch.Actor != "operator" || ch.Owner != "alpha" {
		t.Errorf("the operator stops alpha's chute: %s", body)
	}
	_, body = ts.doToken(t, ts.alpha, "GET", "/api/v1/changes", "")
	if json.Unmarshal(body, &changes) != nil || len(changes.Changes) != 3 ||
		changes.Changes[1].Actor != "developer:alpha" || changes.Changes[1].Action != "install" || changes.Changes[2].Actor != "operator" {
		t.Errorf("alpha's changes: %s", body)
	}
	// Beta cannot take alpha's chute by updating it under its name.
	if code, _ := ts.doToken(t, ts.beta, "PUT", "/api/v1/chutes/mine", "mine 2.0\n"); code != http.StatusNotFound {
		t.Errorf("beta updates alpha's chute: %d", code)
	}
	_, body = ts.do(t, "GET", "/api/v1/chutes", "")
	if json.Unmarshal(body, &list) != nil || len(list.Chutes) != 4 {
		t.Fatalf("the operator's list: %s", body)
	}
}

// A revoked token, an expired one and one of a deleted developer stop
// working at once; the developer's other tokens do not.
func TestTokenRevocation(t *testing.T) {
	ts := newTenants(t)
	var tok newToken
	code, body := ts.do(t, "POST", "/api/v1/developers/alpha/tokens", "")
	if code != http.StatusCreated || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
		t.Fatalf("add token: %d %s", code, body)
	}
	for _, tk := range []string{ts.alpha, tok.Token} {
		if code, _ := ts.doToken(t, tk, "GET", "/api/v1/chutes/aa", ""); code != 200 {
			t.Fatalf("before: %d", code)
		}
	}
	if code, body := ts.do(t, "DELETE", "/api/v1/developers/alpha/tokens/"+ts.alphaID, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := ts.doToken(t, ts.alpha, "GET", "/api/v1/chutes/aa", ""); code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", code)
	}
	if code, _ := ts.doToken(t, tok.Token, "GET", "/api/v1/chutes/aa", ""); code != 200 {
		t.Errorf("the other token after a revocation: %d", code)
	}
	if code, _ := ts.do(t, "DELETE", "/api/v1/developers/alpha/tokens/"+ts.alphaID, ""); code != http.StatusNotFound {
		t.Errorf("revoke twice: %d", code)
	}

	exp := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	code, body = ts.do(t, "POST", "/api/v1/developers/beta/tokens", `{"expires":"`+exp+`"}`)
	if code != http.StatusCreated || json.Unmarshal(body, &tok) != nil || tok.Expires == nil {
		t.Fatalf("add expiring token: %d %s", code, body)
	}
	if code, _ := ts.doToken(t, tok.Token, "GET", "/api/v1/chutes/bb", ""); code != 200 {
		t.Errorf("before expiry: %d", code)
	}
	time.Sleep(time.Until(*tok.Expires))
	if code, _ := ts.doToken(t, tok.Token, "GET", "/api/v1/chutes/bb", ""); code != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", code)
	}
	if code, _ := ts.do(t, "POST", "/api/v1/developers/beta/tokens", `{"expires":"2001-01-01T00:00:00Z"}`); code != http.StatusBadRequest {
		t.Errorf("token expired at birth: %d", code)
	}

	// Deleting a developer that owns chutes needs ?chutes=remove.
	code, body = ts.do(t, "DELETE", "/api/v1/developers/beta", "")
	if code != http.StatusConflict || !strings.Contains(errorOf(t, body), "bb") {
		t.Fatalf("delete beta with its chute: %d %s", code, body)
	}
	if code, _ := ts.doToken(t, ts.beta, "GET", "/api/v1/chutes/bb", ""); code != 200 {
		t.Errorf("after a refused delete: %d", code)
	}
	if code, body := ts.do(t, "DELETE", "/api/v1/developers/beta?chutes=remove", ""); code != 200 {
		t.Fatalf("delete beta and its chutes: %d %s", code, body)
	}
	if code, _ := ts.doToken(t, ts.beta, "GET", "/api/v1/chutes", ""); code != http.StatusUnauthorized {
		t.Errorf("token of a deleted developer: %d, want 401", code)
	}
	if _, err := ts.fake.Get("bb"); err == nil {
		t.Error("the deleted developer's chute is still there")
	}
	if code, _ := ts.do(t, "DELETE", "/api/v1/developers/beta?chutes=keep", ""); code != http.StatusBadRequest {
		t.Errorf("chutes=keep: %d", code)
	}
}

// Hostile developer bodies are refused whole with a 4xx, and nothing is
// created.
func TestDeveloperBodyRefused(t *testing.T) {
	ts := newTenants(t)
	for _, c := range []struct {
		body string
		want int
	}{
		{"", 400},
		{"null", 400},
		{"[]", 400},
		{`{"name":"x"} {"name":"y"}`, 400},
		{`{"name":"x","admin":true}`, 400},
		{`{"name":"x","keys":["nope"]}`, 400},
		{`{"name":"X"}`, 400},
		{`{"name":"../etc"}`, 400},
		{`{"name":"x","quota":{"memory":"lots"}}`, 400},
		{`{"name":"x","quota":{"chutes":-1}}`, 400},
		{`{"name":"alpha"}`, 409},
		{`{"name":"x","allow":{"devices":["` + strings.Repeat("a", maxDeveloperBody) + `"]}}`, 413},
	} {
		code, body := ts.do(t, "POST", "/api/v1/developers", c.body)
		if code != c.want {
			t.Errorf("%.60q: %d %s, want %d", c.body, code, body, c.want)
		}
	}
	var list struct{ Developers []json.RawMessage }
	_, body := ts.do(t, "GET", "/api/v1/developers", "")
	if json.Unmarshal(body, &list) != nil || len(list.Developers) != 3 {
		t.Errorf("developers after the refusals: %s", body)
	}
	if strings.Contains(string(body), ts.alpha) {
		t.Error("a token is shown in the list")
	}
}

// A change beyond the owner's quota is the caller's limit, not a conflict:
// 403 with the manager's words (what is used, asked and allowed).
func TestQuotaRefusedIs403(t *testing.T) {
	ts := newTenants(t)
	ts.fake.Err = fmt.Errorf("install: %w of developer \"alpha\": memory: 192Mi used by its other chutes, \"x\" asks 65Mi, quota 256Mi", chute.ErrQuota)
	code, body := ts.doToken(t, ts.alpha, "POST", "/api/v1/chutes", "x 1.0\n")
	if code != http.StatusForbidden || !strings.Contains(errorOf(t, body), "memory: 192Mi used") {
		t.Fatalf("over quota: %d %s", code, body)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if log := strings.Join(ts.logged, "\n"); !strings.Contains(log, `refused developer:alpha: POST "/api/v1/chutes": 403 install: over quota`) {
		t.Errorf("the refusal is not in the log with actor and reason:\n%s", log)
	}
}

// What a developer's chutes hold against its quota: the operator reads it
// of every developer, a developer of itself alone (whoami), in the quota's
// own terms, so that used and limit compare field by field.
func TestDeveloperUsage(t *testing.T) {
	ts := newTenants(t)
	ts.fake.SetHeld("alpha", chute.Quota{Chutes: 1, CPU: 0.5, Memory: 64 << 20, Disk: 128 << 20, Egress: 5e6})
	type figures map[string]float64
	wantUsed := figures{"chutes": 1, "cpu": 0.5, "memory": 64 << 20, "disk": 128 << 20, "egress": 5e6}
	wantQuota := figures{"chutes": 3, "cpu": 0, "memory": 256 << 20, "disk": 0, "egress": 0}
	type view struct {
		Name        string
		Quota, Used figures
		Tokens      []json.RawMessage
	}
	read := func(token, path string) (int, view, string) {
		t.Helper()
		code, body := ts.doToken(t, token, "GET", path, "")
		var v view
		if code == 200 && json.Unmarshal(body, &v) != nil {
			t.Fatalf("GET %s: %s", path, body)
		}
		return code, v, string(body)
	}

	code, v, body := read(ts.token, "/api/v1/developers/alpha")
	if code != 200 || !maps.Equal(v.Used, wantUsed) || !maps.Equal(v.Quota, wantQuota) {
		t.Errorf("the operator reads alpha: %d %s, want used %v of %v", code, body, wantUsed, wantQuota)
	}
	var list struct{ Developers []view }
	if _, body := ts.do(t, "GET", "/api/v1/developers", ""); json.Unmarshal(body, &list) != nil || len(list.Developers) != 3 ||
		!maps.Equal(list.Developers[0].Used, wantUsed) || list.Developers[1].Name != "beta" || list.Developers[1].Used["chutes"] != 1 ||
		list.Developers[2].Used["chutes"] != 0 {
		t.Errorf("the list: %s", body)
	}
	var changed view
	if code, body := ts.do(t, "PUT", "/api/v1/developers/alpha", `{"quota":{"chutes":1}}`); code != 200 || json.Unmarshal(body, &changed) != nil ||
		!maps.Equal(changed.Used, wantUsed) || changed.Quota["chutes"] != 1 {
		t.Errorf("a change answers with the usage: %d %s", code, body)
	}

	var me struct {
		Actor     string
		Developer *view
	}
	code, raw := ts.doToken(t, ts.alpha, "GET", "/api/v1/whoami", "")
	body = string(raw)
	if code != 200 || json.Unmarshal(raw, &me) != nil || me.Actor != "developer:alpha" || me.Developer == nil ||
		me.Developer.Name != "alpha" || me.Developer.Quota["chutes"] != 1 || !maps.Equal(me.Developer.Used, wantUsed) || len(me.Developer.Tokens) != 1 {
		t.Errorf("alpha asks who it is: %d %s", code, body)
	}
	if strings.Contains(body, ts.alpha) || strings.Contains(body, "beta") {
		t.Errorf("whoami tells alpha a token or another developer: %s", body)
	}
	me.Developer = nil
	if code, raw = ts.doToken(t, ts.beta, "GET", "/api/v1/whoami", ""); code != 200 || json.Unmarshal(raw, &me) != nil ||
		me.Developer == nil || me.Developer.Name != "beta" || me.Developer.Used["chutes"] != 1 || me.Developer.Used["memory"] != 0 {
		t.Errorf("beta asks who it is: %d %s", code, raw)
	}
	me.Developer = nil
	if code, raw = ts.do(t, "GET", "/api/v1/whoami", ""); code != 200 || json.Unmarshal(raw, &me) != nil || me.Actor != "operator" || me.Developer != nil {
		t.Errorf("the operator asks who it is: %d %s", code, raw)
	}
	// Another's record, or its own by name: the operator's routes.
	for _, path := range []string{"/api/v1/developers/beta", "/api/v1/developers/alpha", "/api/v1/developers"} {
		if code, _, body := read(ts.alpha, path); code != http.StatusForbidden || strings.Contains(body, "used") {
			t.Errorf("alpha reads %s: %d %s", path, code, body)
		}
	}
	if code, _ := ts.doToken(t, ts.alpha, "GET", "/api/v1/whoami?name=beta", ""); code != http.StatusBadRequest {
		t.Errorf("whoami with a query: %d, want 400", code)
	}
}

// The API checks a developer's chute is its own, then acts on it: in
// between, the chute can be removed and installed again under the same
// name by another developer. That interleaving is made here on every
// route naming a chute: alpha's call must then answer as for a chute that
// does not exist and change nothing of beta's, which only works if the
// check is made again with the call (by the manager, with the actor, for
// the calls that act).
func TestOwnershipCheckedWithTheCall(t *testing.T) {
	for _, r := range routes {
		if r.reach != chuteOwner {
			continue
		}
		t.Run(r.pattern, func(t *testing.T) {
			ts := newTenants(t)
			ts.fake.AppendLog("aa", "alpha's line")
			var once sync.Once
			ts.fake.AfterOwnerOf = func(name string) {
				once.Do(func() {
					ts.fake.Drop("aa")
					ts.fake.Add(chute.Info{Name: "aa", Owner: "beta", Version: "1.0", State: chute.Running, Desired: chute.Running})
				})
			}
			before := len(ts.fake.Changes())
			path := strings.ReplaceAll(r.path, "CHUTE", "aa")
			code, got := ts.doToken(t, ts.alpha, r.method, path, strings.ReplaceAll(r.body, "CHUTE", "aa"))
			if code != http.StatusNotFound {
				t.Fatalf("%s %s by alpha after aa became beta's: %d %s", r.method, path, code, got)
			}
			ts.fake.AfterOwnerOf = nil
			_, none := ts.doToken(t, ts.alpha, r.method, strings.ReplaceAll(r.path, "CHUTE", "zz"), strings.ReplaceAll(r.body, "CHUTE", "zz"))
			if strings.ReplaceAll(string(got), `\"aa\"`, `\"zz\"`) != string(none) {
				t.Errorf("beta's answers %s, a missing one %s", got, none)
			}
			if n := len(ts.fake.Changes()); n != before {
				t.Errorf("%d changes made on beta's chute", n-before)
			}
			if in, err := ts.fake.Get("aa"); err != nil || in.Owner != "beta" || in.Version != "1.0" {
				t.Errorf("beta's chute: %+v, %v", in, err)
			}
		})
	}
}

// A developer's name cannot be given again while chutes of the former
// developer of that name remain (one that was installing as it was
// deleted): the new one would own them.
func TestDeveloperNameNotReusedOverItsChutes(t *testing.T) {
	ts := newTenants(t)
	if code, body := ts.do(t, "DELETE", "/api/v1/developers/gamma", ""); code != 200 {
		t.Fatalf("delete gamma: %d %s", code, body)
	}
	ts.fake.Add(chute.Info{Name: "late", Owner: "gamma", Version: "1.0", State: chute.Running})
	code, body := ts.do(t, "POST", "/api/v1/developers", `{"name":"gamma"}`)
	if code != http.StatusConflict || !strings.Contains(errorOf(t, body), "late") || strings.Contains(string(body), "token") {
		t.Fatalf("gamma again over its chute: %d %s", code, body)
	}
	ts.fake.Drop("late")
	// Its data kept after it was deleted is not the new gamma's.
	ts.fake.KeepData("late", "gamma")
	if code, body := ts.do(t, "POST", "/api/v1/developers", `{"name":"gamma"}`); code != http.StatusCreated {
		t.Fatalf("gamma again: %d %s", code, body)
	}
	if left, _ := ts.fake.DropKept("gamma"); len(left) != 0 {
		t.Errorf("the new gamma has the former one's kept data: %v", left)
	}
}

// A chute's usage is its own: what was measured of its name before it was
// installed (another developer's chute, perhaps) is not shown.
func TestUsageOfTheNameBeforeTheChute(t *testing.T) {
	ts := newTenants(t)
	installed := time.UnixMilli(10_000).UTC()
	ts.fake.Add(chute.Info{Name: "bb", Owner: "beta", Version: "1.0", State: chute.Running, Installed: &installed})
	ts.fake.SetUsage(usage.Series{Interval: time.Second, Samples: []usage.Sample{
		{T: 9_000, Chutes: map[string]usage.ChuteSample{"bb": {Mem: 111}}},  // alpha's former bb
		{T: 10_500, Chutes: map[string]usage.ChuteSample{"bb": {Mem: 222}}}, // straddles the install
		{T: 11_000, Chutes: map[string]usage.ChuteSample{"bb": {Mem: 333}}},
	}})
	code, body := ts.doToken(t, ts.beta, "GET", "/api/v1/chutes/bb/usage", "")
	var got usageSeries[chuteSample]
	if code != 200 || json.Unmarshal(body, &got) != nil || len(got.Samples) != 1 || got.Samples[0].Mem != 333 {
		t.Errorf("beta's usage of bb: %d %s", code, body)
	}
}

// Deleting a developer deletes the data its removed chutes kept, and no
// one else's.
func TestDeleteDeveloperDropsItsKeptData(t *testing.T) {
	ts := newTenants(t)
	ts.fake.KeepData("old", "beta")
	ts.fake.KeepData("mine", "alpha")
	ts.fake.KeepData("ops", "")
	code, body := ts.do(t, "DELETE", "/api/v1/developers/beta?chutes=remove", "")
	var out deletedDeveloper
	if code != 200 || json.Unmarshal(body, &out) != nil || strings.Join(out.KeptDropped, ",") != "old" || len(out.Changes) != 1 {
		t.Fatalf("delete beta: %d %s", code, body)
	}
	if left, _ := ts.fake.DropKept("alpha"); strings.Join(left, ",") != "mine" {
		t.Errorf("alpha's kept data after beta's deletion: %v", left)
	}
}
