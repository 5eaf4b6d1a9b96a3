package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"paradrop/cgroup"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"paradrop/examples"
)

// e2eCgroupParent keeps the test daemons' chutes apart from other tests'.
var e2eCgroupParent = fmt.Sprintf("/paradrop-e2e-%d", os.Getpid())

// daemon is the real paradrop binary serving on a loopback port.
type daemon struct {
	t    *testing.T
	bin  string
	data string
	url  string
	cmd  *exec.Cmd
	// cgroupParent is e2eCgroupParent unless set: two daemons running at
	// once need two.
	cgroupParent string
	// args are more flags of serve.
	args []string
}

// startRealDaemon starts the real binary on its own data directory under
// top and port; at the test's end it removes the named chutes and stops
// the daemon (the one running then, if the test restarted it).
func startRealDaemon(t *testing.T, chutes ...string) (d *daemon, top string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root")
	}
	top = t.TempDir()
	d = &daemon{t: t, bin: buildBinary(t), data: filepath.Join(top, "data"), url: "http://" + freePort(t)}
	d.start()
	t.Cleanup(func() {
		for _, c := range chutes {
			d.cli("chute", "remove", c, "--yes")
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
		parent := d.cgroupParent
		if parent == "" {
			parent = e2eCgroupParent
		}
		dropCgroupParent(t, parent)
	})
	return d, top
}

// dropCgroupParent removes a test daemon's cgroup parent once nothing runs
// in it: a daemon keeps its parent, as a gateway should, so every test run
// would otherwise leave its empty groups behind in every hierarchy.
func dropCgroupParent(t *testing.T, parent string) {
	t.Helper()
	g, err := cgroup.Load(parent)
	if err != nil {
		return // never made, or already gone
	}
	if procs, err := g.Procs(); err != nil || len(procs) > 0 {
		return // chutes a test leaves running on purpose keep it
	}
	if err := g.Delete(); err != nil {
		t.Logf("cgroup parent %s left: %v", parent, err)
	}
}

// buildBinary builds the static binary once per test run, with flags
// given to go build.
func buildBinary(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "paradrop")
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (d *daemon) start() {
	d.t.Helper()
	addr := strings.TrimPrefix(d.url, "http://")
	parent := d.cgroupParent
	if parent == "" {
		parent = e2eCgroupParent
	}
	d.cmd = exec.Command(d.bin, "serve", "--data", d.data, "--listen", addr,
		"--cgroup-parent", parent,
		// The chute network is tested in a namespace of its own
		// (chute/network_test.go); here the daemon stays off the host's.
		"--network=false")
	d.cmd.Args = append(d.cmd.Args, d.args...)
	log, err := os.OpenFile(filepath.Join(filepath.Dir(d.data), "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(d.url + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			d.t.Fatalf("daemon did not come up: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cli runs the binary as the operator would, returning stdout, stderr and
// the exit code.
func (d *daemon) cli(args ...string) (string, string, int) {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), "PARADROP_SERVER="+d.url, "PARADROP_DATA="+d.data)
	var out, errb bytes.Buffer
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

func (d *daemon) info(name string) map[string]any {
	d.t.Helper()
	out, errs, code := d.cli("chute", "info", name)
	if code != 0 {
		d.t.Fatalf("chute info: %s", errs)
	}
	var in map[string]any
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		d.t.Fatalf("chute info: %v: %s", err, out)
	}
	return in
}

// TestDaemonKilledChutesLive is the whole path an operator takes, with the
// real binary: install through the CLI, kill -9 the daemon, find the chute
// still running and its logs still growing, restart the daemon and see it
// re-adopt the same process.
func TestDaemonKilledChutesLive(t *testing.T) {
	d, top := startRealDaemon(t, "talker")

	pkg, err := examples.Package(`
name: talker
version: 1.0.0
command: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"]
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	pkgPath := filepath.Join(top, "talker.tar.gz")
	os.WriteFile(pkgPath, pkg, 0o644)

	if _, errs, code := d.cli("chute", "install", pkgPath); code != 0 {
		t.Fatalf("install: exit %d: %s", code, errs)
	}
	before := d.info("talker")
	if before["state"] != "running" {
		t.Fatalf("after install: %v", before)
	}
	pid := int(before["pid"].(float64))

	d.cmd.Process.Kill()
	d.cmd.Wait()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("chute died with the daemon: %v", err)
	}
	logPath := filepath.Join(d.data, "chutes", "talker", "logs", "current.log")
	size := func() int64 { fi, _ := os.Stat(logPath); return fi.Size() }
	s0 := size()
	time.Sleep(time.Second)
	if s1 := size(); s1 <= s0 {
		t.Errorf("logs stopped flowing while the daemon was dead (%d -> %d bytes)", s0, s1)
	}

	d.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		after := d.info("talker")
		if after["state"] == "running" && int(after["pid"].(float64)) == pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not re-adopted: %v (pid was %d)", after, pid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, _, code := d.cli("chute", "logs", "talker", "-n", "3")
	if code != 0 || strings.Count(out, "tick") != 3 {
		t.Errorf("logs after re-adoption: exit %d, %q", code, out)
	}
}

// TestCLIErrorsAreOneLine checks what an operator sees on bad input: a
// non-zero exit and one readable line.
func TestCLIErrorsAreOneLine(t *testing.T) {
	d, top := startRealDaemon(t)
	notPkg := filepath.Join(top, "not-a-package")
	os.WriteFile(notPkg, []byte("hello"), 0o644)
	huge, err := examples.Package("name: huge\nversion: 1.0.0\ncommand: [/bin/true]\nresources: {disk: 1Ti}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	hugePkg := filepath.Join(top, "huge.tar.gz")
	os.WriteFile(hugePkg, huge, 0o644)
	// The daemon is started without --allow-devices or --allow-caps.
	priv, err := examples.Package("name: priv\nversion: 1.0.0\ncommand: [/bin/true]\ndevices: [{path: /dev/ttyUSB9}]\ncapabilities: [NET_RAW]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	privPkg := filepath.Join(top, "priv.tar.gz")
	os.WriteFile(privPkg, priv, 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"chute", "install", notPkg}, 1, "package"},
		{[]string{"chute", "info", "nosuch"}, 1, "no such chute"},
		{[]string{"chute", "info", "NoSuch"}, 1, `chute name "nosuch" is not a lowercase dns label`},
		{[]string{"changes", "99999"}, 1, "change 99999: no such change"},
		{[]string{"chute", "install", hugePkg}, 1, `not enough room on the gateway: disk: "huge" asks 1ti for /data`},
		{[]string{"chute", "install", privPkg}, 1, "not allowed to ask for devices /dev/ttyusb9 and capabilities net_raw"},
		// A second daemon on the same data directory names the first.
		{[]string{"serve", "--data", d.data, "--listen", freePort(t), "--network=false", "--cgroup-parent", e2eCgroupParent},
			1, fmt.Sprintf("held by another process (pid %d;", d.cmd.Process.Pid)},
		{[]string{"chute", "start", "Bad_Name"}, 1, "name"},
		{[]string{"chute", "bogus"}, 2, "bogus"},
		{[]string{"nosuchcommand"}, 2, "unknown command"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, errs, code := d.cli(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (%q)", code, c.code, errs)
			}
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if !strings.Contains(strings.ToLower(lines[0]), c.want) {
				t.Errorf("stderr %q does not mention %q", errs, c.want)
			}
			if c.code == 1 && len(lines) != 1 {
				t.Errorf("error is %d lines, want one: %q", len(lines), errs)
			}
		})
	}
}
