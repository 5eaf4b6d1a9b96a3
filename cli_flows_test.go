package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCLIFlows(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path == "/api/v1/chutes/nope/flows" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"flows of \"nope\": chute not attached"}`))
			return
		}
		w.Write([]byte(`{"rules":[
			{"table":0,"priority":0,"cookie":1,"rule":"default deny (table 0)","packets":7,"bytes":420,"installed":true},
			{"chute":"web","table":2,"priority":250,"cookie":42949672961,"rule":"chute web may reach LAN 198.51.100.20:554/tcp","packets":3,"bytes":180,"installed":false}]}`))
	}))
	t.Cleanup(srv.Close)
	f := newCLIFixture(t)
	f.vars["PARADROP_SERVER"] = srv.URL

	if rc := f.run(flowsMain); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	lines := strings.Split(strings.TrimSpace(f.stdout.String()), "\n")
	want := []string{
		"CHUTE TABLE PRIO PACKETS BYTES RULE",
		"- 0 0 7 420 default deny (table 0)",
		"web 2 250 3 180 chute web may reach LAN 198.51.100.20:554/tcp (not installed)",
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", f.stdout)
	}
	for i, l := range lines {
		if got := strings.Join(strings.Fields(l), " "); got != want[i] {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
	if rc := f.run(flowsMain, "web"); rc != 0 || paths[len(paths)-1] != "/api/v1/chutes/web/flows" {
		t.Errorf("flows web: rc %d, path %v", rc, paths)
	}
	if rc := f.run(flowsMain, "nope"); rc != 1 {
		t.Errorf("unattached chute: rc %d", rc)
	}
	f.oneLine(t, `paradrop: flows: flows of "nope": chute not attached`)
	if rc := f.run(flowsMain, "a", "b"); rc != 2 {
		t.Errorf("two names: rc %d, want 2", rc)
	}
}
