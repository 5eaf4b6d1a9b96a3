//go:build !router

package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/internal/mosquitto"
	"paradrop/tlscert"
	"paradrop/usp"
)

// paradrop fleet reaches an ssl:// broker as the agents do: the broker's
// certificate verified with --ca's CAs only, logged in with --username and
// --password-file. `fleet serve` (the real binary) finds a real daemon's
// agent over TLS and `fleet gateways` lists it; a broker whose certificate
// another CA signed, or the system's roots, are refused.
func TestFleetTLS(t *testing.T) {
	b := mosquitto.StartTLS(t, map[string]string{"gw": "gw-secret", "fleet": "fleet-secret"})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gwPassword, fleetPassword := write("gw", "gw-secret\n"), write("fleet", "fleet-secret\n")
	const ctrl, agentID = "self::fleet-tls", "os::fleet-tls-gw"
	startLimitedDaemon(t, serveOptions{maxUpload: 8 << 20, usp: uspOptions{broker: b.TLSURL(), endpointID: agentID,
		ca: b.CAFile(), username: "gw", passwordFile: gwPassword,
		controllers: map[string]usp.Controller{ctrl: {Topic: "usp/controllers/" + ctrl}}}})

	serve := exec.Command(buildBinary(t), "fleet", "serve", "--broker", b.TLSURL(), "--ca", b.CAFile(),
		"--username", "fleet", "--password-file", fleetPassword, "--endpoint-id", ctrl, "--listen", "127.0.0.1:0",
		"--gateway", agentID+"=usp/agents/"+agentID, "--probe-every", "1s")
	var log bytes.Buffer
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })

	cli := func(env map[string]string, args ...string) (int, string) {
		f := newFleetCLI(b.TLSURL())
		f.env.getenv = func(k string) string {
			if k == "PARADROP_FLEET_BROKER" {
				return b.TLSURL()
			}
			return env[k]
		}
		rc := f.run(args...)
		return rc, f.stdout.String() + f.stderr.String()
	}
	pinned := map[string]string{"PARADROP_FLEET_CA": b.CAFile(), "PARADROP_FLEET_USERNAME": "fleet", "PARADROP_FLEET_PASSWORD_FILE": fleetPassword}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rc, out := cli(pinned, "gateways")
		if rc == 0 && strings.Contains(out, agentID) && strings.Contains(out, buildVersion()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways: %d %s\nfleet serve: %s", rc, out, log.String())
		}
	}

	other := t.TempDir()
	if _, err := tlscert.EnsureSelfSigned(other, tlscert.Names{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"another CA": {map[string]string{"PARADROP_FLEET_CA": filepath.Join(other, tlscert.Dir, "cert.pem"),
			"PARADROP_FLEET_USERNAME": "fleet", "PARADROP_FLEET_PASSWORD_FILE": fleetPassword}, "certificate"},
		"the system's roots": {map[string]string{"PARADROP_FLEET_USERNAME": "fleet", "PARADROP_FLEET_PASSWORD_FILE": fleetPassword}, "certificate"},
		"a wrong password": {map[string]string{"PARADROP_FLEET_CA": b.CAFile(), "PARADROP_FLEET_USERNAME": "fleet",
			"PARADROP_FLEET_PASSWORD_FILE": gwPassword}, "not Authorized"},
	} {
		if rc, out := cli(tc.env, "gateways"); rc == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d: %s", name, rc, out)
		}
	}
	if rc, out := cli(nil, "gateways", "--broker", "tcp://127.0.0.1:1", "--ca", b.CAFile()); rc != 2 || !strings.Contains(out, "--ca needs an ssl://") {
		t.Errorf("--ca with tcp://: exit %d: %s", rc, out)
	}
}
