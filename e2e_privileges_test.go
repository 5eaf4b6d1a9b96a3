package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"paradrop/chute/sandbox/sandboxtest"
	"paradrop/examples"
)

// cliAs runs the binary with a developer's token, returning stdout,
// stderr and the exit code.
func (d *daemon) cliAs(token string, args ...string) (string, string, int) {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), "PARADROP_SERVER="+d.url, "PARADROP_TOKEN="+token, "PARADROP_DATA="+filepath.Dir(d.data))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// addDeveloper adds a developer through the CLI and returns its token.
func (d *daemon) addDeveloper(args ...string) string {
	d.t.Helper()
	out, errs, code := d.cli(append([]string{"developer", "add"}, args...)...)
	if code != 0 {
		d.t.Fatalf("developer add %v: %s", args, errs)
	}
	return regexp.MustCompile(`(?m)^pdd_[0-9a-f]{64}$`).FindString(out)
}

// TestDevicePassthroughOnRealDaemon: a developer allowed a device installs
// a chute, running as a non-root user, that reads and writes it, although
// the host's node is root:disk 0660; a developer not allowed it is
// refused at install, naming the device.
func TestDevicePassthroughOnRealDaemon(t *testing.T) {
	d, top := startRealDaemon(t, "sensor")
	host, major, minor := sandboxtest.WritableLoopDevice(t)
	dev := sandboxtest.DevNode(t, "paradrop-e2e-sensor", major, minor)
	hw := d.addDeveloper("hw", "--allow-unsigned", "--device", dev)
	sw := d.addDeveloper("sw", "--allow-unsigned")
	p, err := examples.Package(fmt.Sprintf(`
name: sensor
version: 1.0.0
user: 1000
command: ["/probe.sh"]
devices: [{path: %s, inside: /dev/sensor, access: rw}]
`, dev), map[string]string{"probe.sh": "#!/bin/sh\nid -u\nhead -c 7 /dev/sensor; echo\nprintf written! > /dev/sensor && echo write ok\nexec sleep 1000\n"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(top, "sensor.tar.gz")
	if err := os.WriteFile(path, p, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, errs, code := d.cliAs(sw, "chute", "install", path); code != 1 || !strings.Contains(errs, "not allowed to ask for devices "+dev) {
		t.Errorf("sw installs a chute asking for %s: exit %d %s", dev, code, errs)
	}
	if _, errs, code := d.cliAs(hw, "chute", "install", path); code != 0 {
		t.Fatalf("hw installs its chute: %s", errs)
	}
	var logs string
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs, "write ok") && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		logs, _, _ = d.cliAs(hw, "chute", "logs", "sensor")
	}
	for _, want := range []string{"1000", "sensor!", "write ok"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the chute's log lacks %q:\n%s", want, logs)
		}
	}
	b, err := os.ReadFile(host)
	if err != nil || !strings.HasPrefix(string(b), "written!") {
		t.Errorf("the device after the chute's write: %q, %v", b[:min(len(b), 16)], err)
	}
}

// TestNetRawOnRealDaemon: a developer allowed NET_RAW installs a chute
// that pings through a raw socket (busybox ping as root uses one); the
// same chute without the capability cannot, and asking for it without
// the allowance is refused at install.
func TestNetRawOnRealDaemon(t *testing.T) {
	d, top := startRealDaemon(t, "raw", "noraw")
	netDev := d.addDeveloper("net", "--allow-unsigned", "--cap", "NET_RAW")
	plain := d.addDeveloper("plain", "--allow-unsigned")
	pkg := func(name, caps string) string {
		p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/probe.sh]\n"+caps,
			map[string]string{"probe.sh": "#!/bin/sh\nping -c 1 -W 3 127.0.0.1 2>&1; echo ping exit $?\nexec sleep 1000\n"})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(top, name+".tar.gz")
		if err := os.WriteFile(path, p, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if _, errs, code := d.cliAs(plain, "chute", "install", pkg("raw", "capabilities: [NET_RAW]\n")); code != 1 || !strings.Contains(errs, "not allowed to ask for capabilities NET_RAW") {
		t.Errorf("plain installs a chute asking for NET_RAW: exit %d %s", code, errs)
	}
	for _, c := range []struct{ name, caps, want string }{
		{"raw", "capabilities: [NET_RAW]\n", "ping exit 0"},
		{"noraw", "", "ping exit 1"},
	} {
		if _, errs, code := d.cliAs(netDev, "chute", "install", pkg(c.name, c.caps)); code != 0 {
			t.Fatalf("install %s: %s", c.name, errs)
		}
		var logs string
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs, "ping exit") && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			logs, _, _ = d.cliAs(netDev, "chute", "logs", c.name)
		}
		if !strings.Contains(logs, c.want) {
			t.Errorf("%s: want %q in its log:\n%s", c.name, c.want, logs)
		}
	}
}
