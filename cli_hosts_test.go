package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCLIHosts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/hosts" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") == "Bearer dev" {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"operator only"}`))
			return
		}
		w.Write([]byte(`{"hosts":[
			{"mac":"02:00:00:00:00:0a","ips":["198.51.100.20","198.51.100.21"],"port":"lan1","first_seen":"2026-12-06T19:00:00Z","last_seen":"2026-12-06T19:01:00Z","active":true},
			{"mac":"02:00:00:00:00:0b","ips":[],"port":"lan2","first_seen":"2026-12-06T18:00:00Z","last_seen":"2026-12-06T18:00:05Z","active":false}]}`))
	}))
	t.Cleanup(srv.Close)
	f := newCLIFixture(t)
	f.vars["PARADROP_SERVER"] = srv.URL

	if rc := f.run(hostsMain); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	lines := strings.Split(strings.TrimSpace(f.stdout.String()), "\n")
	want := []string{
		"MAC ACTIVE PORT ADDRESSES LAST SEEN",
		"02:00:00:00:00:0a true lan1 198.51.100.20,198.51.100.21 2026-12-06T19:01:00Z",
		"02:00:00:00:00:0b false lan2 - 2026-12-06T18:00:05Z",
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", f.stdout)
	}
	for i, l := range lines {
		if got := strings.Join(strings.Fields(l), " "); got != want[i] {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
	if rc := f.run(hostsMain, "extra"); rc != 2 {
		t.Errorf("an argument: rc %d, want 2", rc)
	}
	f.vars["PARADROP_TOKEN"] = "dev"
	if rc := f.run(hostsMain); rc != 1 {
		t.Errorf("a developer: rc %d, want 1", rc)
	}
	f.oneLine(t, "paradrop: hosts: operator only")
}
