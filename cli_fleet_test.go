//go:build !router

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
	"paradrop/fleet"
	"paradrop/internal/mosquitto"
	"paradrop/internal/uspsim"
	"paradrop/usp"
)

type fleetCLI struct {
	env            *cliEnv
	stdout, stderr bytes.Buffer
	broker         string
}

func newFleetCLI(broker string) *fleetCLI {
	f := &fleetCLI{broker: broker}
	f.env = &cliEnv{stdout: &f.stdout, stderr: &f.stderr, getenv: func(k string) string {
		if k == "PARADROP_FLEET_BROKER" {
			return f.broker
		}
		return ""
	}}
	return f
}

func (f *fleetCLI) run(args ...string) int {
	f.stdout.Reset()
	f.stderr.Reset()
	return fleetMain(f.env, args)
}

// runFleetServer runs a controller in-process until the test ends.
func runFleetServer(t *testing.T, broker, id string, probe time.Duration) *fleet.Server {
	t.Helper()
	s, err := fleet.NewServer(t.Context(), fleet.ServerConfig{Broker: broker, EndpointID: id, Topic: "usp/controllers/" + id,
		Listen: "127.0.0.1:0", ProbeEvery: probe, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the controller did not connect")
	}
	return s
}

func TestFleetCLIUsage(t *testing.T) {
	f := newFleetCLI("")
	for _, args := range [][]string{
		{"gateways"}, // no broker
		{"gateways", "--broker", "http://x"},
		{"serve", "--broker", "tcp://127.0.0.1:1"}, // no endpoint ID
		{"rollout", "start", "--broker", "tcp://127.0.0.1:1", "--package", "p", "--signature", "s"},
		{"rollout", "start", "--broker", "tcp://127.0.0.1:1", "--package", "p", "--signature", "s", "--targets", "a", "--label", "b"},
		{"rollout", "pause", "--broker", "tcp://127.0.0.1:1"},
		{"label", "--broker", "tcp://127.0.0.1:1", "gw", "a/b"},
		{"gateways", "--broker", "tcp://127.0.0.1:1", "--prefix", "a/+"},
	} {
		if rc := f.run(args...); rc != 2 || strings.Count(f.stderr.String(), "\n") != 1 || !strings.HasPrefix(f.stderr.String(), "paradrop: ") {
			t.Errorf("%q: rc %d, stderr %q", args, rc, f.stderr.String())
		}
	}
}

// The CLI rolls a signed package out to gateways by ID and by label,
// waits for it, shows its status and refuses to pause an ended one.
func TestFleetCLIRollout(t *testing.T) {
	b := mosquitto.Start(t)
	const ctrl = "self::fleet-cli"
	runFleetServer(t, b.URL(), ctrl, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	var agents []*uspsim.Agent
	done := make(chan struct{})
	for i := range 4 {
		id := fmt.Sprintf("os::cli-gw%d", i)
		a := &uspsim.Agent{ID: id, Topic: "usp/agents/" + id, Controllers: map[string]string{ctrl: "usp/controllers/" + ctrl}, Version: "gw-9"}
		agents = append(agents, a)
		go func() { a.Run(ctx, b.URL()); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range agents {
			<-done
		}
	})
	f := newFleetCLI(b.URL())
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if rc := f.run("gateways"); rc == 0 && strings.Count(f.stdout.String(), "gw-9") == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways: %s%s", f.stdout.String(), f.stderr.String())
		}
	}
	pkg, err := examples.Package("name: fleetapp\nversion: 2.1.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pkgFile := filepath.Join(dir, "fleetapp.tar.gz")
	os.WriteFile(pkgFile, pkg, 0o644)
	sigFile := pkgFile + ".minisig"
	os.WriteFile(sigFile, signaturetest.NewKey(t).SignBytes(t, pkg), 0o644)

	if rc := f.run("rollout", "start", "--package", pkgFile, "--signature", sigFile, "--id", "r1",
		"--targets", agents[0].ID+","+agents[1].ID, "--wait"); rc != 0 || !strings.Contains(f.stdout.String(), "completed succeeded=2") {
		t.Fatalf("rollout start: rc %d\n%s%s", rc, f.stdout.String(), f.stderr.String())
	}
	if agents[0].DU("fleetapp") != "2.1.0" || agents[2].DU("fleetapp") != "" {
		t.Errorf("versions %q %q", agents[0].DU("fleetapp"), agents[2].DU("fleetapp"))
	}
	if rc := f.run("label", agents[3].ID, "home"); rc != 0 {
		t.Fatalf("label: %d %s", rc, f.stderr.String())
	}
	if rc := f.run("rollout", "start", "--package", pkgFile, "--signature", sigFile, "--id", "r2", "--label", "home", "--wait"); rc != 0 {
		t.Fatalf("rollout by label: rc %d\n%s%s", rc, f.stdout.String(), f.stderr.String())
	}
	if agents[3].DU("fleetapp") != "2.1.0" || agents[2].DU("fleetapp") != "" {
		t.Errorf("by label: versions %q %q", agents[3].DU("fleetapp"), agents[2].DU("fleetapp"))
	}
	if rc := f.run("rollout", "status", "r1", "--json"); rc != 0 {
		t.Fatalf("status: %d %s", rc, f.stderr.String())
	}
	var st struct {
		State   fleet.State
		Owner   string
		Results map[string]fleet.Result
	}
	if err := json.Unmarshal(f.stdout.Bytes(), &st); err != nil || st.State != fleet.Completed || st.Owner != ctrl ||
		st.Results[agents[1].ID].State != fleet.Succeeded {
		t.Errorf("status %+v %v: %s", st, err, f.stdout.String())
	}
	if rc := f.run("rollout", "status"); rc != 0 || !strings.Contains(f.stdout.String(), "r2") {
		t.Errorf("status list: %d %s", rc, f.stdout.String())
	}
	if rc := f.run("rollout", "pause", "r1"); rc != 1 || !strings.Contains(f.stderr.String(), "has ended") {
		t.Errorf("pause of an ended rollout: rc %d %s", rc, f.stderr.String())
	}
	if rc := f.run("rollout", "start", "--package", pkgFile, "--signature", sigFile, "--id", "r1", "--targets", agents[2].ID); rc != 1 {
		t.Errorf("a second r1: rc %d %s", rc, f.stderr.String())
	}
}

// The controller finds three real daemons' agents and shows their
// software version and chutes.
func TestFleetDiscoversDaemons(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the chute manager needs root")
	}
	b := mosquitto.Start(t)
	const ctrl = "self::fleet-daemons"
	runFleetServer(t, b.URL(), ctrl, 300*time.Millisecond)
	var daemons []*limitedDaemon
	for i := range 3 {
		d := &limitedDaemon{data: t.TempDir()}
		d.addr = startServe(t, serveOptions{dataDir: d.data, maxUpload: 8 << 20,
			cgroups: fmt.Sprintf("/paradrop-fleet-%d-%d", os.Getpid(), i),
			usp: uspOptions{broker: b.URL(), endpointID: fmt.Sprintf("os::fleet-daemon-%d", i),
				controllers: map[string]usp.Controller{ctrl: {Topic: "usp/controllers/" + ctrl}}}})
		tok, err := os.ReadFile(filepath.Join(d.data, "operator.token"))
		if err == nil {
			d.token = strings.TrimSpace(string(tok))
		}
		daemons = append(daemons, d)
	}
	pkg, err := examples.Package("name: fleetchute\nversion: 3.0.1\ncommand: [/bin/sleep, \"1000\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + daemons[1].addr
	apiCall(t, base, daemons[1].token, "POST", "/api/v1/chutes?wait=1", string(pkg))
	t.Cleanup(func() { apiCall(t, base, daemons[1].token, "DELETE", "/api/v1/chutes/fleetchute?wait=1", "") })

	f := newFleetCLI(b.URL())
	var gws []fleet.Gateway
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		gws = nil
		if rc := f.run("gateways", "--json"); rc == 0 {
			json.Unmarshal(f.stdout.Bytes(), &gws)
		}
		if len(gws) == 3 && len(gws[1].Chutes) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways: %+v %s", gws, f.stderr.String())
		}
	}
	for i, g := range gws {
		if g.ID != fmt.Sprintf("os::fleet-daemon-%d", i) || !g.Online || g.Version != buildVersion() {
			t.Errorf("gateway %+v", g)
		}
	}
	if c := gws[1].Chutes[0]; c.Name != "fleetchute" || c.Version != "3.0.1" {
		t.Errorf("chute %+v", c)
	}
	f.run("gateways")
	t.Logf("\n%s", f.stdout.String())
}

// A controller process killed (SIGKILL) mid-rollout: the broker publishes
// its will, a second process takes the rollout over from the retained
// state and finishes it, redoing no gateway the first one finished.
func TestFleetTakeoverAfterKill(t *testing.T) {
	b := mosquitto.Start(t)
	bin := buildBinary(t)
	const a, bb = "self::fleet-a", "self::fleet-b"
	ctrls := map[string]string{a: "usp/controllers/" + a, bb: "usp/controllers/" + bb}
	ctx, cancel := context.WithCancel(context.Background())
	var agents []*uspsim.Agent
	done := make(chan struct{})
	serveA := []string{"fleet", "serve", "--broker", b.URL(), "--endpoint-id", a, "--listen", "127.0.0.1:0"}
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("os::kill-gw%d", i)
		ag := &uspsim.Agent{ID: id, Topic: "usp/agents/" + id, Controllers: ctrls, Version: "gw-1", Delay: 300 * time.Millisecond}
		agents = append(agents, ag)
		ids = append(ids, id)
		serveA = append(serveA, "--gateway", id+"="+ag.Topic)
		go func() { ag.Run(ctx, b.URL()); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range agents {
			<-done
		}
	})
	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &testLog{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	procA := start(serveA...)
	st, err := fleet.OpenRetained(t.Context(), fleet.RetainedConfig{Broker: b.URL(), ClientID: "test-watch"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); {
			select {
			case <-st.Changed():
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the gateways probed", func() bool { return len(st.Gateways()) == 10 })

	pkg, err := examples.Package("name: killapp\nversion: 1.1.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(t.TempDir(), "killapp.tar.gz")
	os.WriteFile(pkgFile, pkg, 0o644)
	os.WriteFile(pkgFile+".minisig", signaturetest.NewKey(t).SignBytes(t, pkg), 0o644)
	f := newFleetCLI(b.URL())
	if rc := f.run("rollout", "start", "--package", pkgFile, "--signature", pkgFile+".minisig", "--id", "rk",
		"--targets", strings.Join(ids, ","), "--max-in-flight", "2"); rc != 0 {
		t.Fatalf("start: %d %s", rc, f.stderr.String())
	}
	status := func() fleet.Status { s, _, _ := st.Rollout("rk"); return s }
	wait("3 gateways updated", func() bool { return status().Counts[fleet.Succeeded] >= 3 })
	procA.Process.Kill()
	procA.Wait()
	finished := map[string]bool{}
	for gw, r := range status().Result {
		finished[gw] = r.State == fleet.Succeeded
	}
	wait("A's will", func() bool { return len(st.Online()) == 0 })
	if s := status(); s.State != fleet.Running || s.Owner != a {
		t.Fatalf("after the kill: %s owner %q", s.State, s.Owner)
	}

	start("fleet", "serve", "--broker", b.URL(), "--endpoint-id", bb, "--listen", "127.0.0.1:0")
	wait("the rollout to end", func() bool { return status().State.Done() })
	s := status()
	if s.State != fleet.Completed || s.Counts[fleet.Succeeded] != 10 || s.Owner != bb {
		t.Fatalf("rollout %s %v owner %q", s.State, s.Counts, s.Owner)
	}
	n := 0
	for _, ag := range agents {
		if ag.DU("killapp") != "1.1.0" {
			t.Errorf("%s runs %q", ag.ID, ag.DU("killapp"))
		}
		if finished[ag.ID] {
			n++
			if ag.Installs() != 1 {
				t.Errorf("%s, finished by A, installed %d times", ag.ID, ag.Installs())
			}
		}
	}
	t.Logf("A finished %d gateways before its kill; B the rest", n)
}

// testLog writes a subprocess's stderr to the test's log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(b []byte) (int, error) {
	l.t.Logf("%s", bytes.TrimRight(b, "\n"))
	return len(b), nil
}
