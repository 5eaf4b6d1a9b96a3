package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/api"
	"paradrop/examples"
)

// A manifest declaring network access the switch cannot enforce (a
// redirect to an IPv4-mapped IPv6 address) is refused by the real daemon's
// API with a 400 and a message naming the field, not installed with the
// rule silently dropped.
func TestAPIRefusesUnenforceableNetwork(t *testing.T) {
	d, _ := startRealDaemon(t, "v6lan")
	tok, err := os.ReadFile(filepath.Join(d.data, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := examples.Package("name: v6lan\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nnet:\n  redirect: [{to: \"[::ffff:203.0.113.5]:443\", port: 8443, proto: tcp}]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", d.url+"/api/v1/chutes", bytes.NewReader(p))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(e.Error, "net.redirect[0].to: [::ffff:203.0.113.5]:443 is an IPv4-mapped IPv6 address") {
		t.Errorf("install of an IPv4-mapped redirect: %d %s; want 400 naming net.redirect[0].to", resp.StatusCode, body)
	}
	if _, errs, code := d.cli("chute", "info", "v6lan"); code != 1 || !strings.Contains(errs, "no such chute") {
		t.Errorf("chute info after the refusal: exit %d, %s", code, errs)
	}
}
