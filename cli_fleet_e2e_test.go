//go:build !router

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paradrop/api"
	"paradrop/chute/signature"
	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
	"paradrop/fleet"
	"paradrop/internal/mosquitto"
	"paradrop/usp"
	"paradrop/usp/codec"
)

// The fleet controller drives three real daemons' agents end to end:
// rollouts of signed packages install and update a chute on all three,
// the test's own controller stops, starts and uninstalls it (the fleet
// CLI has no such commands), a rollout one gateway refuses aborts and
// rolls the gateways it updated back, and a controller no daemon trusts
// installs nothing.
func TestFleetE2EDaemons(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the chute manager needs root")
	}
	b := mosquitto.Start(t)
	const ctrl = "self::fleet-e2e"
	own := func(i int) string { return fmt.Sprintf("self::e2e-own-%d", i) }
	runFleetServer(t, b.URL(), ctrl, time.Second)

	keyA, keyB := signaturetest.NewKey(t), signaturetest.NewKey(t)
	pubA, err := signature.ParseKey(keyA.Line())
	if err != nil {
		t.Fatal(err)
	}
	pubB, err := signature.ParseKey(keyB.Line())
	if err != nil {
		t.Fatal(err)
	}
	type daemon struct {
		id, base, token string
	}
	var ds []daemon
	var ids []string
	for i := range 3 {
		keys := []signature.Key{pubA, pubB}
		if i == 2 {
			keys = keys[:1] // the third refuses what key B signs
		}
		data := t.TempDir()
		id := fmt.Sprintf("os::e2e-daemon-%d", i)
		addr := startServe(t, serveOptions{dataDir: data, maxUpload: 8 << 20,
			cgroups: fmt.Sprintf("/paradrop-fleete2e-%d-%d", os.Getpid(), i),
			signing: api.Signing{Keys: keys, Required: true},
			usp: uspOptions{broker: b.URL(), endpointID: id, controllers: map[string]usp.Controller{
				ctrl: {Topic: "usp/controllers/" + ctrl}, own(i): {Topic: fmt.Sprintf("usp/controllers/own-%d", i)}}}})
		tok, err := os.ReadFile(filepath.Join(data, api.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		d := daemon{id: id, base: "http://" + addr, token: strings.TrimSpace(string(tok))}
		t.Cleanup(func() { apiCall(t, d.base, d.token, "DELETE", "/api/v1/chutes/e2eapp?wait=1", "") })
		ds = append(ds, d)
		ids = append(ids, id)
	}
	// chuteOf is the chute as each daemon's API shows it ("" when absent).
	chuteOf := func(d daemon) (version, state string) {
		req, _ := http.NewRequest("GET", d.base+"/api/v1/chutes/e2eapp", nil)
		req.Header.Set("Authorization", "Bearer "+d.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c struct{ Version, State string }
		if resp.StatusCode == http.StatusOK {
			json.NewDecoder(resp.Body).Decode(&c)
		}
		return c.Version, c.State
	}
	waitChutes := func(what string, want func(i int) (string, string)) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			ok := true
			var got []string
			for i, d := range ds {
				v, s := chuteOf(d)
				wv, ws := want(i)
				got = append(got, v+"/"+s)
				ok = ok && v == wv && s == ws
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the daemons run %v", what, got)
			}
		}
	}
	all := func(v, s string) func(int) (string, string) { return func(int) (string, string) { return v, s } }

	f := newFleetCLI(b.URL())
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var gws []fleet.Gateway
		if rc := f.run("gateways", "--json"); rc == 0 {
			json.Unmarshal(f.stdout.Bytes(), &gws)
		}
		if n := len(gws); n == 3 && gws[0].Online && gws[1].Online && gws[2].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways: %s%s", f.stdout.String(), f.stderr.String())
		}
	}
	dir := t.TempDir()
	pkgFile := func(v string, key signaturetest.Key) string {
		pkg, err := examples.Package("name: e2eapp\nversion: "+v+"\ncommand: [/bin/sleep, \"1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "e2eapp-"+v+".tar.gz")
		os.WriteFile(p, pkg, 0o644)
		os.WriteFile(p+".minisig", key.SignBytes(t, pkg), 0o644)
		return p
	}
	rollout := func(id, p string, extra ...string) (int, string) {
		t.Helper()
		start := time.Now()
		rc := f.run(append([]string{"rollout", "start", "--package", p, "--signature", p + ".minisig", "--id", id,
			"--targets", strings.Join(ids, ","), "--timeout", "60s", "--wait"}, extra...)...)
		t.Logf("rollout %s: rc %d in %v\n%s%s", id, rc, time.Since(start).Round(time.Millisecond), f.stdout.String(), f.stderr.String())
		return rc, f.stdout.String() + f.stderr.String()
	}

	if rc, out := rollout("e2e-v1", pkgFile("1.0.0", keyA)); rc != 0 || !strings.Contains(out, "completed succeeded=3") {
		t.Fatalf("rollout of 1.0.0: rc %d", rc)
	}
	waitChutes("1.0.0 installed", all("1.0.0", "running"))

	if rc, out := rollout("e2e-v2", pkgFile("2.0.0", keyA)); rc != 0 || !strings.Contains(out, "completed succeeded=3") {
		t.Fatalf("rollout of 2.0.0: rc %d", rc)
	}
	waitChutes("2.0.0 installed", all("2.0.0", "running"))

	// Stop and start, through the agent, from the test's own controller.
	const eu = "Device.SoftwareModules.ExecutionUnit.[Name==\"e2eapp\"]."
	ctls := make([]*uspController, len(ds))
	for i, d := range ds {
		ctls[i] = newUSPController(t, b, d.id, own(i), fmt.Sprintf("usp/controllers/own-%d", i))
	}
	for _, state := range []struct{ req, want string }{{"Idle", "stopped"}, {"Active", "running"}} {
		for _, c := range ctls {
			res := c.operate(eu+"SetRequestedState()", map[string]string{"RequestedState": state.req})
			if res.GetCmdFailure() != nil {
				t.Fatalf("%s: SetRequestedState(%s): %v", c.agentID, state.req, res)
			}
		}
		waitChutes("SetRequestedState "+state.req, all("2.0.0", state.want))
	}

	// 3.0.0, signed by key B, which the third daemon does not trust: the
	// first two update, the third refuses, 1 failure in 3 crosses 10%,
	// the rollout aborts and the first two go back to 2.0.0.
	if rc, out := rollout("e2e-v3", pkgFile("3.0.0", keyB), "--canary", "0", "--max-in-flight", "1",
		"--abort-min", "3", "--abort-percent", "10"); rc != 1 || !strings.Contains(out, "succeeded=2 failed=1") ||
		!strings.Contains(out, "aborted rolled-back=3") {
		t.Fatalf("rollout of 3.0.0: rc %d", rc)
	}
	st, err := fleet.OpenRetained(t.Context(), fleet.RetainedConfig{Broker: b.URL(), ClientID: "e2e-watch"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, _, _ := st.Rollout("e2e-v3")
	t.Logf("e2e-v3: %s %v: %s", s.State, s.Counts, s.Reason)
	for gw, r := range s.Result {
		t.Logf("  %s: %+v", gw, r)
	}
	for i, gw := range ids { // the failed gateway too, which had nothing to undo
		// It keeps why it failed.
		if r := s.Result[gw]; r.State != fleet.RolledBack || r.Prev != "2.0.0" || (i == 2) != strings.Contains(r.Error, "key") {
			t.Errorf("%s: %+v", gw, r)
		}
	}
	waitChutes("rolled back", all("2.0.0", "running"))

	// A controller the daemons do not trust installs nothing.
	stranger := newUSPController(t, b, ids[0], "self::stranger", "usp/controllers/stranger")
	for _, cmd := range []string{"Device.SoftwareModules.InstallDU()", "Device.SoftwareModules.DeploymentUnit.*.Uninstall()"} {
		id := stranger.request(&codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
			Command: cmd, CommandKey: "x", SendResp: true, InputArgs: map[string]string{"URL": "http://127.0.0.1:1/x.tar.gz"}}}}, codec.Header_OPERATE)
		if _, m := stranger.next("the stranger's answer", func(m *codec.Msg) bool { return m.Header.MsgId == id }); m.GetBody().GetError().GetErrCode() != 7006 {
			t.Errorf("the stranger's %s: %v", cmd, m)
		}
	}
	time.Sleep(time.Second)
	if v, s := chuteOf(ds[0]); v != "2.0.0" || s != "running" {
		t.Errorf("after the stranger's requests: %s %s", v, s)
	}
	if n := ctls[0].get("Device.SoftwareModules.DeploymentUnitNumberOfEntries"); n != "1" {
		t.Errorf("after the stranger's requests: %s DUs", n)
	}

	// Uninstall, from the test's own controller.
	for _, c := range ctls {
		if res := c.operate("Device.SoftwareModules.DeploymentUnit.[Name==\"e2eapp\"].Uninstall()", nil); res.GetCmdFailure() != nil {
			t.Fatalf("%s: Uninstall: %v", c.agentID, res)
		}
	}
	waitChutes("uninstalled", all("", ""))
}
