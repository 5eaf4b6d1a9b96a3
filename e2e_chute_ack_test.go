package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"paradrop/examples"
)

// installTokenChute installs a chute that copies its token to its /data
// and then runs script, and returns the token as the chute read it.
func installTokenChute(t *testing.T, d *daemon, top, name, script string) string {
	t.Helper()
	p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sh, -c, \"cat /paradrop/token > /data/t; mv /data/t /data/token; "+script+"\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(top, name+".tar.gz")
	if err := os.WriteFile(path, p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := d.cli("chute", "install", path); code != 0 {
		t.Fatalf("install %s: %s", name, errs)
	}
	tokenFile := filepath.Join(d.data, "chutes", name, "data", "token")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(tokenFile)
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("chute %s wrote no token to %s", name, tokenFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chuteSocket is a client of the chute's /paradrop/api.sock, at its path on
// the host.
func chuteSocket(d *daemon, name string) *http.Client {
	path := filepath.Join(d.data, "chutes", name, "policy", "api.sock")
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
}

// call makes one request with token and returns its status and body.
func call(t *testing.T, c *http.Client, url, token, method, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestChuteAcksPolicyOnRealDaemon: with a long grace, the chute sees the
// request in GET /self (as in policy.json), acknowledges it with its token
// on its socket, and the change ends at once, the ack in its steps. A
// stale or second ack is refused with 409, and the operator may not ack.
func TestChuteAcksPolicyOnRealDaemon(t *testing.T) {
	d, top := startRealDaemon(t, "polite")
	tok := installTokenChute(t, d, top, "polite", "exec sleep 1000")
	operator, err := os.ReadFile(filepath.Join(d.data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	op := strings.TrimSpace(string(operator))
	sock := chuteSocket(d, "polite")
	ack := func(token, body string) (int, []byte) {
		t.Helper()
		return call(t, sock, d.url+"/api/v1/self/policy/ack", token, "POST", body)
	}

	if code, body := ack(tok, ""); code != http.StatusConflict || !bytes.Contains(body, []byte(`"error"`)) {
		t.Errorf("ack with nothing waiting: %d %s, want 409", code, body)
	}
	code, body := call(t, http.DefaultClient, d.url+"/api/v1/chutes/polite/resources", op, "PUT", `{"memory":"32Mi","grace":"50s"}`)
	var queued struct {
		ChangeID uint64 `json:"change_id"`
	}
	if code != http.StatusAccepted || json.Unmarshal(body, &queued) != nil {
		t.Fatalf("PUT resources: %d %s", code, body)
	}
	var self struct {
		PolicyRequest *struct {
			Deadline  time.Time
			Grace     string
			Resources struct{ Memory int64 }
		} `json:"policy_request"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for self.PolicyRequest == nil {
		if time.Now().After(deadline) {
			t.Fatalf("GET /self shows no policy request: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
		code, body = call(t, sock, d.url+"/api/v1/self", tok, "GET", "")
		if code != 200 || json.Unmarshal(body, &self) != nil {
			t.Fatalf("GET /self: %d %s", code, body)
		}
	}
	req := self.PolicyRequest
	var doc struct{ Deadline time.Time }
	raw, err := os.ReadFile(filepath.Join(d.data, "chutes", "polite", "policy", "policy.json"))
	if err != nil || json.Unmarshal(raw, &doc) != nil || !doc.Deadline.Equal(req.Deadline) || req.Grace != "50s" || req.Resources.Memory != 32<<20 {
		t.Fatalf("policy request %+v; policy.json %s (%v)", req, raw, err)
	}
	named := `{"deadline":"` + req.Deadline.Format(time.RFC3339Nano) + `"}`
	if code, body := call(t, http.DefaultClient, d.url+"/api/v1/self/policy/ack", op, "POST", named); code != http.StatusForbidden {
		t.Errorf("the operator acks: %d %s, want 403", code, body)
	}
	stale := `{"deadline":"` + req.Deadline.Add(-time.Millisecond).Format(time.RFC3339Nano) + `"}`
	if code, body := ack(tok, stale); code != http.StatusConflict {
		t.Errorf("a stale ack: %d %s, want 409", code, body)
	}
	acked := time.Now()
	if code, body := ack(tok, named); code != 200 {
		t.Fatalf("ack: %d %s", code, body)
	}
	var ch struct {
		State string
		Steps []struct{ Message string }
	}
	for ch.State != "done" && ch.State != "failed" && time.Since(acked) < 20*time.Second {
		time.Sleep(50 * time.Millisecond)
		code, body = call(t, http.DefaultClient, d.url+"/api/v1/changes/"+strconv.FormatUint(queued.ChangeID, 10), op, "GET", "")
		if code != 200 || json.Unmarshal(body, &ch) != nil {
			t.Fatalf("the change: %d %s", code, body)
		}
	}
	took := time.Since(acked)
	var steps []string
	for _, s := range ch.Steps {
		steps = append(steps, s.Message)
	}
	all := strings.Join(steps, "\n")
	t.Logf("the change ended %s after the ack (grace 50s):\n%s", took, all)
	if ch.State != "done" || took > 10*time.Second || !strings.Contains(all, "chute acknowledged at T+") || !strings.Contains(all, "backstop: cgroup") {
		t.Errorf("the change after the ack (%s later): %s\n%s", took, ch.State, all)
	}
	if code, body := ack(tok, named); code != http.StatusConflict {
		t.Errorf("an ack after the change: %d %s, want 409", code, body)
	}
}
