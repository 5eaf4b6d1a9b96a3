package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"aead.dev/minisign"

	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/store"
	"paradrop/tenant"
)

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "wait=1", "tail=10&follow", "tail=1&tail=2", "x=1", "%zz", "wait=true;tail=3", "tail=-0", "follow=%00"} {
		f.Add(s)
	}
	allowed := []string{"wait", "tail", "follow"}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw, allowed...)
		if err != nil {
			return
		}
		for k := range q {
			if !slices.Contains(allowed, k) {
				t.Fatalf("%q: accepted unknown %q", raw, k)
			}
		}
		if n, err := q.intIn("tail", 7, 0, maxTail); err == nil && (n < 0 || n > maxTail) {
			t.Fatalf("%q: tail %d out of range", raw, n)
		}
		q.flag("wait")
	})
}

// FuzzHandler throws arbitrary authenticated requests at the handler: it
// must not panic and must answer with a success, a client error or the
// mux's own redirect to a cleaned path — never a 5xx.
func FuzzHandler(f *testing.F) {
	dir := f.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	if _, _, err := EnsureOperatorToken(db, dir); err != nil {
		f.Fatal(err)
	}
	if err := db.Put(store.Meta, tokenHashKey, hashToken("t")); err != nil {
		f.Fatal(err)
	}
	fake := apitest.New()
	fake.Add(chute.Info{Name: "web", Version: "1"})
	h := New(Config{Chutes: fake, DB: db, Started: time.Now(), MaxUpload: 64})
	// Canceled, so that follow and wait return at once instead of blocking.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"}
	f.Add(uint8(0), "chutes/web/logs", "tail=3&follow=1", []byte(nil))
	f.Add(uint8(1), "chutes", "wait=1", []byte("db 2\n"))
	f.Add(uint8(2), "chutes/web", "force=1&wait=1", []byte("web 2\n"))
	f.Add(uint8(3), "chutes/web", "keep_data", []byte(nil))
	f.Add(uint8(1), "chutes/web/restart", "", []byte("junk"))
	f.Add(uint8(0), "changes/18446744073709551616", "", []byte(nil))
	f.Add(uint8(0), "chutes/../info", "", []byte(nil))
	f.Add(uint8(2), "chutes/web/resources", "wait=1", []byte(`{"cpu_max":0.5,"memory":"32Mi","bandwidth":{"egress":"5Mbit"}}`))
	f.Add(uint8(2), "chutes/web/resources", "", []byte(`{"memory":-1,"bogus":true}`))
	f.Add(uint8(1), "developers", "", []byte(`{"name":"acme","quota":{"chutes":3,"memory":"256Mi"}}`))
	f.Add(uint8(2), "developers/acme", "", []byte(`{"keys":["x"]}`))
	f.Add(uint8(1), "developers/acme/tokens", "", []byte(`{"expires":"2001-01-01T00:00:00Z"}`))
	f.Add(uint8(3), "developers/acme", "chutes=remove", []byte(nil))
	f.Fuzz(func(t *testing.T, m uint8, path, rawQuery string, body []byte) {
		req := httptest.NewRequestWithContext(ctx, methods[int(m)%len(methods)], "/", bytes.NewReader(body))
		req.URL.Path = "/api/v1/" + path
		req.URL.RawQuery = rawQuery
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch c := rec.Code; {
		case c/100 == 2, c/100 == 4, c == http.StatusMovedPermanently, c == http.StatusTemporaryRedirect, c == http.StatusPermanentRedirect:
		default:
			t.Fatalf("%s %s?%s: %d %s", req.Method, req.URL.Path, rawQuery, c, rec.Body)
		}
	})
}

// FuzzDeveloperBody: whatever a developer body holds, it is refused or
// becomes a spec within the rules: a valid name, at most MaxKeys keys each a
// minisign key line, no negative quota.
func FuzzDeveloperBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"acme","keys":["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"],"quota":{"chutes":3,"cpu":1.5,"memory":"256Mi","disk":"512Mi","egress":"20Mbit"},"allow":{"unsigned":false,"devices":[],"capabilities":[]}}`,
		`{"name":"a","quota":{"memory":-1}}`, `{"name":"a"}{}`, `{"name":"a","keys":[""]}`, `{"quota":{"cpu":1e400}}`,
		`{"name":"a","quota":{"cpu":-0}}`, `{"name":"a","keys":null}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var spec tenant.Spec
		if err := decodeObject(bytes.NewReader(body), maxDeveloperBody, "developer", &spec); err != nil {
			return
		}
		if err := spec.Validate(); err != nil {
			return
		}
		if len(spec.Keys) > tenant.MaxKeys || spec.Quota.Chutes < 0 || spec.Quota.CPU < 0 || spec.Quota.Memory < 0 || spec.Quota.Disk < 0 {
			t.Fatalf("accepted %+v", spec)
		}
		for _, k := range spec.Keys {
			var pk minisign.PublicKey
			if pk.UnmarshalText([]byte(k)) != nil || pk.String() != k {
				t.Fatalf("accepted key %q", k)
			}
		}
		again := spec
		if again.Validate() != nil || len(again.Name) == 0 || len(again.Name) > 32 {
			t.Fatalf("accepted name %q", spec.Name)
		}
	})
}
