package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"aead.dev/minisign"

	"paradrop/chute"
)

func TestCLIDeveloper(t *testing.T) {
	f := newCLIFixture(t)
	pk, _, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := pk.MarshalText()
	keyFile := filepath.Join(t.TempDir(), "acme.pub")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if rc := f.run(developerMain, "add", "acme", "--key", keyFile, "--chutes", "3", "--memory", "256Mi", "--egress", "20Mbit"); rc != 0 {
		t.Fatalf("add: rc %d %s", rc, f.stderr)
	}
	token := regexp.MustCompile(`(?m)^pdd_[0-9a-f]{64}$`).FindString(f.stdout.String())
	if token == "" {
		t.Fatalf("add did not show the token: %s", f.stdout)
	}
	if rc := f.run(developerMain, "set", "acme", "--chutes", "5"); rc != 0 {
		t.Fatalf("set: rc %d %s", rc, f.stderr)
	}
	if out := f.stdout.String(); !strings.Contains(out, "quota: chutes=5 memory=256Mi egress=20Mbit") || !strings.Contains(out, "key: "+pk.String()) ||
		!strings.Contains(out, "allow: unsigned=false follow=false") {
		t.Errorf("set changed more than --chutes:\n%s", out)
	}
	if rc := f.run(developerMain, "set", "acme", "--allow-follow"); rc != 0 || !strings.Contains(f.stdout.String(), "allow: unsigned=false follow=true") ||
		!strings.Contains(f.stdout.String(), "quota: chutes=5") {
		t.Fatalf("set --allow-follow: rc %d %s %s", rc, f.stdout, f.stderr)
	}
	if rc := f.run(developerMain, "list"); rc != 0 || !strings.Contains(f.stdout.String(), "acme") || strings.Contains(f.stdout.String(), token) {
		t.Errorf("list: rc %d\n%s", rc, f.stdout)
	}
	if rc := f.run(developerMain, "token", "add", "acme", "--expires", "1h"); rc != 0 || !strings.Contains(f.stdout.String(), "expires") {
		t.Fatalf("token add: rc %d %s %s", rc, f.stdout, f.stderr)
	}
	if rc := f.run(developerMain, "show", "acme"); rc != 0 || strings.Count(f.stdout.String(), "token ") != 2 {
		t.Fatalf("show: rc %d\n%s", rc, f.stdout)
	}
	if out := f.stdout.String(); !strings.Contains(out, "used: chutes=0/5 cpu=0/- memory=0/256Mi disk=0/- egress=0/20Mbit\n") {
		t.Errorf("show does not say what acme uses:\n%s", out)
	}
	id := regexp.MustCompile(`token ([0-9a-f]+): `).FindStringSubmatch(f.stdout.String())[1]
	if rc := f.run(developerMain, "token", "revoke", "acme", id); rc != 0 {
		t.Fatalf("revoke: rc %d %s", rc, f.stderr)
	}
	if rc := f.run(developerMain, "add", "acme"); rc != 1 {
		t.Errorf("add twice: rc %d", rc)
	}
	f.oneLine(t, "paradrop: add: developer \"acme\": developer already exists")
	if rc := f.run(developerMain, "add", "bad", "--memory", "lots"); rc != 2 {
		t.Errorf("bad quantity: rc %d", rc)
	}
	f.fake.Add(chute.Info{Name: "web", Owner: "acme"})
	if rc := f.run(developerMain, "remove", "acme"); rc != 1 || !strings.Contains(f.stderr.String(), "owns chutes web") {
		t.Errorf("remove with chutes: rc %d %s", rc, f.stderr)
	}
	if rc := f.run(developerMain, "remove", "acme", "--remove-chutes"); rc != 0 || !strings.Contains(f.stdout.String(), "changes [") {
		t.Errorf("remove --remove-chutes: rc %d %s %s", rc, f.stdout, f.stderr)
	}
	if rc := f.run(developerMain, "bogus"); rc != 2 {
		t.Errorf("unknown subcommand: rc %d", rc)
	}
}

// show prints what a developer's chutes use of its quota; a developer
// shows itself with its own token, and nobody else.
func TestCLIDeveloperShowUsage(t *testing.T) {
	f := newCLIFixture(t)
	if rc := f.run(developerMain, "add", "acme", "--chutes", "3", "--cpu", "1.5", "--memory", "256Mi", "--egress", "20Mbit"); rc != 0 {
		t.Fatalf("add: rc %d %s", rc, f.stderr)
	}
	token := regexp.MustCompile(`(?m)^pdd_[0-9a-f]{64}$`).FindString(f.stdout.String())
	if rc := f.run(developerMain, "add", "beta"); rc != 0 {
		t.Fatalf("add: rc %d %s", rc, f.stderr)
	}
	f.fake.SetHeld("acme", chute.Quota{Chutes: 2, CPU: 0.5, Memory: 64 << 20, Disk: 128 << 20, Egress: 5e6})
	const want = "used: chutes=2/3 cpu=0.5/1.5 memory=64Mi/256Mi disk=128Mi/- egress=5Mbit/20Mbit\n"
	if rc := f.run(developerMain, "show", "acme"); rc != 0 || !strings.Contains(f.stdout.String(), want) {
		t.Errorf("the operator shows acme: rc %d\n%s%s", rc, f.stdout, f.stderr)
	}
	if rc := f.run(developerMain, "show"); rc != 2 {
		t.Errorf("the operator shows itself: rc %d, want 2", rc)
	}
	f.oneLine(t, "paradrop: show: this token is the operator's, not a developer's")

	f.vars["PARADROP_TOKEN"] = token
	if rc := f.run(developerMain, "show"); rc != 0 || !strings.Contains(f.stdout.String(), "developer acme ") || !strings.Contains(f.stdout.String(), want) {
		t.Errorf("acme shows itself: rc %d\n%s%s", rc, f.stdout, f.stderr)
	}
	for _, name := range []string{"beta", "acme"} {
		if rc := f.run(developerMain, "show", name); rc != 1 || !strings.Contains(f.stderr.String(), "only the operator") {
			t.Errorf("acme shows %s: rc %d %s", name, rc, f.stderr)
		}
	}
}
