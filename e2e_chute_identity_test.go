package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/examples"
)

// TestChuteIdentityOnRealDaemon: a chute, with the token it reads inside
// itself, gets its own info from the real daemon, on its own socket
// /paradrop/api.sock and on the daemon's listener, and nothing else; its
// token changes when it restarts, and the old one, like the token of a
// removed chute, is refused.
func TestChuteIdentityOnRealDaemon(t *testing.T) {
	d, top := startRealDaemon(t, "me", "other")
	for _, name := range []string{"me", "other"} {
		p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sh, -c, \"rm -f /data/token; for f in /paradrop/*; do [ -S $f ] && echo socket $f; done > /data/ls; cat /paradrop/token > /data/t; mv /data/t /data/token; exec sleep 1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(top, name+".tar.gz")
		os.WriteFile(path, p, 0o644)
		if _, errs, code := d.cli("chute", "install", path); code != 0 {
			t.Fatalf("install %s: %s", name, errs)
		}
	}
	// The token as the chute read it, from its /data.
	read := func(name, not string) string {
		tokenFile := filepath.Join(d.data, "chutes", name, "data", "token")
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(tokenFile)
			if tok := strings.TrimSpace(string(b)); tok != "" && tok != not {
				return tok
			}
			if time.Now().After(deadline) {
				t.Fatalf("the chute wrote no new token to %s", tokenFile)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The chute's socket, at its path on the host.
	sock := func(name string) *http.Client {
		path := filepath.Join(d.data, "chutes", name, "policy", "api.sock")
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
	}
	getOn := func(c *http.Client, token, method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(token, method, path string) (int, string) {
		t.Helper()
		return getOn(http.DefaultClient, token, method, path)
	}
	first := read("me", "")
	if ls, _ := os.ReadFile(filepath.Join(d.data, "chutes", "me", "data", "ls")); !strings.Contains(string(ls), "socket /paradrop/api.sock") {
		t.Errorf("inside the chute, /paradrop holds:\n%s", ls)
	}
	// On the chute's socket: its own info with its token; nobody else's
	// token, the operator's included, gets in.
	me := sock("me")
	if code, body := getOn(me, first, "GET", "/api/v1/self"); code != 200 || !strings.Contains(body, `"name": "me"`) {
		t.Errorf("GET /self on the socket: %d %s", code, body)
	}
	if code, body := getOn(me, first, "GET", "/api/v1/chutes"); code != 403 {
		t.Errorf("GET /chutes on the socket: %d %s, want 403", code, body)
	}
	operator, _ := os.ReadFile(filepath.Join(d.data, "operator.token"))
	otherTok := read("other", "")
	for who, tok := range map[string]string{"the operator": strings.TrimSpace(string(operator)), "another chute": otherTok, "no one": "x"} {
		if code, body := getOn(me, tok, "GET", "/api/v1/self"); code != 401 {
			t.Errorf("%s on chute me's socket: %d %s, want 401", who, code, body)
		}
	}
	code, body := get(first, "GET", "/api/v1/self")
	var self struct {
		Name, Version, State string
		Resources            map[string]any
	}
	if code != 200 || json.Unmarshal([]byte(body), &self) != nil || self.Name != "me" || self.Version != "1.0.0" || self.State != "running" || self.Resources == nil {
		t.Fatalf("GET /self: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/chutes", 403},
		{"GET", "/api/v1/info", 403},
		{"GET", "/api/v1/changes", 403},
		{"GET", "/api/v1/developers", 403},
		{"GET", "/api/v1/chutes/me", 403},
		{"POST", "/api/v1/chutes/me/stop", 403},
		{"GET", "/api/v1/chutes/other", 404},
		{"DELETE", "/api/v1/chutes/other", 404},
		{"GET", "/api/v1/chutes/other/logs", 404},
	} {
		if code, body := get(first, c.method, c.path); code != c.want {
			t.Errorf("%s %s as the chute: %d %s, want %d", c.method, c.path, code, body, c.want)
		}
	}

	// A daemon restart re-adopts the running chute: same token, its
	// socket served again.
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	d.start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := getOn(me, first, "GET", "/api/v1/self")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a daemon restart, GET /self on the socket: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, errs, code := d.cli("chute", "restart", "me"); code != 0 {
		t.Fatalf("restart: %s", errs)
	}
	second := read("me", first)
	if code, body := get(first, "GET", "/api/v1/self"); code != 401 {
		t.Errorf("the last run's token: %d %s, want 401", code, body)
	}
	if code, body := get(second, "GET", "/api/v1/self"); code != 200 || !strings.Contains(body, `"name": "me"`) {
		t.Errorf("the new token: %d %s", code, body)
	}
	if code, body := getOn(me, second, "GET", "/api/v1/self"); code != 200 {
		t.Errorf("the new token on the new socket: %d %s", code, body)
	}
	if code, _ := getOn(me, first, "GET", "/api/v1/self"); code != 401 {
		t.Errorf("the last run's token on the socket: %d, want 401", code)
	}
	if _, errs, code := d.cli("chute", "remove", "me", "--yes"); code != 0 {
		t.Fatalf("remove: %s", errs)
	}
	if code, body := get(second, "GET", "/api/v1/self"); code != 401 {
		t.Errorf("a removed chute's token: %d %s, want 401", code, body)
	}
	if _, err := os.Stat(filepath.Join(d.data, "chutes", "me")); !os.IsNotExist(err) {
		t.Errorf("the removed chute's directory: %v", err)
	}
	if _, err := sock("other").Get(d.url + "/api/v1/self"); err != nil {
		t.Errorf("another chute's socket went with it: %v", err)
	}
}
