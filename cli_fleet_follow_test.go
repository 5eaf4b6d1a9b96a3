//go:build !router

package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	followme "paradrop/follow"
)

// fleet serve's follow-me flags: gateways as ENDPOINT_ID=URL,TOKEN_FILE
// checked as a migration target is, positive durations; none: no
// follow-me.
func TestFleetFollowFlags(t *testing.T) {
	parse := func(args ...string) (fleetFollowOptions, error) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o fleetFollowOptions
		fleetFollowFlags(fs, &o)
		return o, fs.Parse(args)
	}
	o, err := parse("--follow-gateway", "os::gw1=http://127.0.0.1:8081,/etc/pd/gw1", "--follow-gateway", "os::gw2=http://127.0.0.1:8082,/etc/pd/gw2", "--follow-hold", "1m")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config(t.Logf)
	if err != nil || cfg == nil || cfg.Hold != time.Minute || cfg.Every != followPoll || len(cfg.Gateways) != 2 || cfg.Move == nil {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	if o, _ := parse(); o.hold != defaultFollowHold {
		t.Errorf("default hold %v", o.hold)
	} else if cfg, err := o.config(t.Logf); cfg != nil || err != nil {
		t.Errorf("no gateways: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{"--follow-gateway", "http://127.0.0.1:8081,/etc/pd/gw1"},
		{"--follow-gateway", "os::gw1=http://198.51.100.7:8081,/etc/pd/gw1"},
		{"--follow-gateway", "os::gw1=https://198.51.100.7:8443,/etc/pd/gw1"},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	o, _ = parse("--follow-gateway", "os::gw1=http://127.0.0.1:8081,/etc/pd/gw1", "--follow-hold", "0s")
	if _, err := o.config(t.Logf); err == nil {
		t.Error("a hold of 0 accepted")
	}
}

// The fleet moves a developer's chute with the tokens it holds: the
// target's operator token makes a token of that developer there, which
// the source, asked with its own operator token, migrates with; the
// developer's token is revoked once the move has ended.
func TestFleetFollowMove(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	log := func(who string, r *http.Request, body string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, who+" "+r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+body)
	}
	dst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log("dst", r, "")
		if r.Method == "POST" {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"t9","token":"pdd_acme"}`))
		}
	}))
	defer dst.Close()
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		log("src", r, string(b))
		w.Write([]byte(`{"state":"done"}`))
	}))
	defer src.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "src"), []byte("pdo_src\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "dst"), []byte("pdo_dst\n"), 0o600)
	gws := map[string]followPeer{
		"os::a": {url: src.URL, tokenFile: filepath.Join(dir, "src")},
		"os::b": {url: dst.URL, tokenFile: filepath.Join(dir, "dst")},
	}
	m := followme.Move{Binding: followme.Binding{Chute: "cam", Owner: "acme", MAC: "02:00:00:00:00:0a", Gateway: "os::a"}, To: "os::b"}
	if err := fleetFollowMove(context.Background(), gws, m, t.Logf); err != nil {
		t.Fatal(err)
	}
	to := `{"to":"` + dst.URL + `","token":"pdd_acme","fingerprint":""}`
	want := []string{
		"dst POST /api/v1/developers/acme/tokens Bearer pdo_dst ",
		"src POST /api/v1/chutes/cam/migrate?wait=1 Bearer pdo_src " + to,
		"dst DELETE /api/v1/developers/acme/tokens/t9 Bearer pdo_dst ",
	}
	if !slices.Equal(seen, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}
