package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
)

// TestTenantsOnRealDaemon: two developers and the operator on the real
// binary, with real chutes: a developer installs its own chute, is held to
// its quota, cannot see another's chute nor the operator's endpoints; the
// audit names who did what; revocation works at once; ownership survives
// a daemon restart.
func TestTenantsOnRealDaemon(t *testing.T) {
	d, top := startRealDaemon(t, "a1")
	as := func(token string, args ...string) (string, string, int) {
		cmd := exec.Command(d.bin, args...)
		// No data dir: the operator's token file must not be what is used.
		cmd.Env = append(os.Environ(), "PARADROP_SERVER="+d.url, "PARADROP_TOKEN="+token, "PARADROP_DATA="+top)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	tokenRE := regexp.MustCompile(`(?m)^pdd_[0-9a-f]{64}$`)
	add := func(args ...string) string {
		out, errs, code := d.cli(append([]string{"developer", "add"}, args...)...)
		if code != 0 {
			t.Fatalf("developer add %v: %s", args, errs)
		}
		return tokenRE.FindString(out)
	}
	acmeKey, betaKey := signaturetest.NewKey(t), signaturetest.NewKey(t)
	acme := add("acme", "--chutes", "1", "--memory", "64Mi", "--key", acmeKey.PubFile)
	beta := add("beta", "--key", betaKey.PubFile)

	pkg := func(name string) string {
		p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nresources: {memory: 32Mi}\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(top, name+".tar.gz")
		os.WriteFile(path, p, 0o644)
		return path
	}
	// A developer's package must be signed by one of its own keys: not
	// unsigned, not by another developer's key.
	a1 := pkg("a1")
	sigFile := func(k signaturetest.Key) string {
		f := filepath.Join(t.TempDir(), "a1.minisig")
		os.WriteFile(f, k.Sign(t, a1), 0o644)
		return f
	}
	if _, errs, code := as(acme, "chute", "install", a1); code != 1 || !strings.Contains(errs, "not signed") {
		t.Errorf("acme installs an unsigned package: exit %d %s", code, errs)
	}
	if _, errs, code := as(acme, "chute", "install", a1, "--signature", sigFile(betaKey)); code != 1 || !strings.Contains(errs, "not trusted") {
		t.Errorf("acme installs a package beta signed: exit %d %s", code, errs)
	}
	if _, errs, code := as(acme, "chute", "install", a1, "--signature", sigFile(acmeKey)); code != 0 {
		t.Fatalf("acme installs a1 signed by its key: %s", errs)
	}
	if in := d.info("a1"); !strings.Contains(acmeKey.Pub, "minisign public key "+fmt.Sprint(in["signed_by"])) {
		t.Errorf("a1 signed by %v, acme's key is %q", in["signed_by"], acmeKey.Pub)
	}
	// What acme's chutes hold of its quota: a1's memory, as the operator
	// and acme itself read it.
	for who, args := range map[string][]string{"the operator": {"developer", "show", "acme"}, "acme": {"developer", "show"}} {
		run := d.cli
		if who == "acme" {
			run = func(args ...string) (string, string, int) { return as(acme, args...) }
		}
		if out, errs, code := run(args...); code != 0 || !strings.Contains(out, "used: chutes=1/1 ") || !strings.Contains(out, " memory=32Mi/64Mi ") {
			t.Errorf("%s shows acme: exit %d %s%s", who, code, out, errs)
		}
	}
	if _, errs, code := as(acme, "chute", "install", pkg("a2"), "--sign", acmeKey.SecFile); code != 1 || !strings.Contains(errs, `chutes: 1 used by its other chutes, "a2" asks 1 more, quota 1`) {
		t.Errorf("acme beyond its quota: exit %d %s", code, errs)
	}
	if _, errs, code := as(beta, "chute", "info", "a1"); code != 1 || !strings.Contains(errs, `chute "a1": no such chute`) {
		t.Errorf("beta reads acme's chute: exit %d %s", code, errs)
	}
	if _, errs, code := as(beta, "chute", "stop", "a1"); code != 1 || !strings.Contains(errs, "no such chute") {
		t.Errorf("beta stops acme's chute: exit %d %s", code, errs)
	}
	if out, _, code := as(beta, "chute", "list"); code != 0 || strings.Contains(out, "a1") {
		t.Errorf("beta's list: exit %d %s", code, out)
	}
	if _, errs, code := as(beta, "developer", "list"); code != 1 || !strings.Contains(errs, "only the operator") {
		t.Errorf("beta lists developers: exit %d %s", code, errs)
	}
	if out, _, code := d.cli("changes"); code != 0 || !strings.Contains(out, "developer:acme") {
		t.Errorf("changes do not name acme:\n%s", out)
	}
	logb, _ := os.ReadFile(filepath.Join(top, "daemon.log"))
	if !strings.Contains(string(logb), "refused developer:beta") {
		t.Errorf("beta's refusals are not in the daemon's log")
	}

	// Ownership survives the daemon.
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	d.start()
	if in := d.info("a1"); in["owner"] != "acme" || in["state"] != "running" {
		t.Errorf("after a restart: %v", in)
	}
	if _, errs, code := as(acme, "chute", "stop", "a1"); code != 0 {
		t.Errorf("acme stops its chute: %s", errs)
	}

	out, _, _ := d.cli("developer", "show", "acme")
	id := regexp.MustCompile(`token ([0-9a-f]+): `).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("show: %s", out)
	}
	if _, errs, code := d.cli("developer", "token", "revoke", "acme", id[1]); code != 0 {
		t.Fatalf("revoke: %s", errs)
	}
	if _, errs, code := as(acme, "chute", "list"); code != 1 || !strings.Contains(errs, "invalid token") {
		t.Errorf("revoked token: exit %d %s", code, errs)
	}
}
