package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"paradrop/examples"
	"paradrop/internal/mosquitto"
	"paradrop/usp"
	"paradrop/usp/codec"
)

func TestServeUSPFlags(t *testing.T) {
	f := newCLIFixture(t)
	ctrl := []string{"--usp-controller", "self::ctrl=usp/controllers/ctrl"}
	for _, args := range [][]string{
		ctrl, // no broker
		{"--usp-endpoint-id", "os::x"},
		{"--usp-broker", "tcp://127.0.0.1:1883"}, // no controller
		append([]string{"--usp-broker", "http://127.0.0.1:1883"}, ctrl...),
		{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-controller", "self::ctrl"},
		{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-controller", "ctrl=usp/c"},
		{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-controller", "self::ctrl=usp/#"},
		{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-controller", "self::ctrl=usp/c,developer=Bad Name"},
		{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-controller", "self::ctrl=usp/c,developer="},
		append([]string{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-ca", "/etc/hostname"}, ctrl...),            // not ssl://
		append([]string{"--usp-broker", "ssl://127.0.0.1:8883", "--usp-ca", "/etc/hostname"}, ctrl...),            // no PEM
		append([]string{"--usp-broker", "ssl://127.0.0.1:8883", "--usp-password-file", "/etc/hostname"}, ctrl...), // no user
		append([]string{"--usp-broker", "ssl://127.0.0.1:8883", "--usp-username", "u", "--usp-password-file", "/nonexistent"}, ctrl...),
		{"--usp-ca", "/etc/hostname"},
		append([]string{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-endpoint-id", "os::a b"}, ctrl...),
		append([]string{"--usp-broker", "tcp://127.0.0.1:1883", "--usp-topic", "usp/+/a"}, ctrl...),
	} {
		run := func(env *cliEnv, args []string) int { return runCLI(env, "serve", cmdServe, args) }
		if rc := f.run(run, args...); rc != 2 {
			t.Errorf("%q: rc %d", args, rc)
		}
		f.oneLine(t, "paradrop: serve: ")
	}
}

func TestMachineSerial(t *testing.T) {
	dir := t.TempDir()
	a, err := machineSerial(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := machineSerial(dir)
	if err != nil || a != b || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a) {
		t.Fatalf("serials %q %q, %v", a, b, err)
	}
}

// serve's agent answers a controller with the chute manager's chutes; the
// gateway starts and serves its API while the broker is down, and the
// agent connects once it is back.
func TestServeUSP(t *testing.T) {
	b := mosquitto.Start(t)
	b.Stop()
	const agentID, ctrlID = "os::serve-test", "self::ctrl"
	d := startLimitedDaemon(t, serveOptions{maxUpload: 8 << 20, usp: uspOptions{
		broker: b.URL(), endpointID: agentID, controllers: map[string]usp.Controller{ctrlID: {Topic: "usp/controllers/ctrl"}},
	}})
	d.health(t) // the broker is down
	pkg, err := examples.Package("name: usptest\nversion: 1.2.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.addr
	apiCall(t, base, d.token, "POST", "/api/v1/chutes?wait=1", string(pkg))
	t.Cleanup(func() { apiCall(t, base, d.token, "DELETE", "/api/v1/chutes/usptest?wait=1", "") })

	b.Restart()
	answers := make(chan mqtt.Message, 10)
	ctrl := b.Client(t, "ctrl", "usp/controllers/ctrl/#", answers)
	req, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "g1", MsgType: codec.Header_GET},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{
			ParamPaths: []string{"Device.LocalAgent.EndpointID", "Device.DeviceInfo.SoftwareVersion",
				"Device.SoftwareModules.DeploymentUnit.*.Name", "Device.SoftwareModules.ExecutionUnit.*.Status"},
		}}}}},
	}, ctrlID, agentID)
	if err != nil {
		t.Fatal(err)
	}
	// The agent retries with TR-369's backoff (5 to 10 s the first time):
	// ask until it answers.
	// Once connected, the agent sends its Connect Record too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msg *codec.Msg
	connected := false
	for msg == nil || !connected {
		if msg == nil {
			ctrl.Publish("usp/agents/"+agentID+"/reply-to=usp%2Fcontrollers%2Fctrl", 1, false, req)
		}
		select {
		case m := <-answers:
			rec, got, err := codec.Unwrap(m.Payload(), ctrlID, 1<<20)
			switch {
			case err == nil && got.Header.MsgId == "g1":
				msg = got
			case err == nil: // a notification: Device.Boot!
			case rec.GetMqttConnect().GetSubscribedTopic() == "usp/agents/"+agentID:
				connected = true
			default:
				t.Fatalf("record %v: %v", rec, err)
			}
		case <-time.After(time.Second):
		case <-ctx.Done():
			t.Fatalf("no answer (%v) or no connect record (%v) from the agent", msg != nil, connected)
		}
	}
	got := map[string]string{}
	for _, r := range msg.GetBody().GetResponse().GetGetResp().GetReqPathResults() {
		if r.ErrCode != 0 {
			t.Errorf("%s: %d %s", r.RequestedPath, r.ErrCode, r.ErrMsg)
		}
		for _, res := range r.ResolvedPathResults {
			for k, v := range res.ResultParams {
				got[res.ResolvedPath+k] = v
			}
		}
	}
	for k, v := range map[string]string{
		"Device.LocalAgent.EndpointID": agentID, "Device.DeviceInfo.SoftwareVersion": buildVersion(),
		"Device.SoftwareModules.DeploymentUnit.1.Name": "usptest", "Device.SoftwareModules.ExecutionUnit.1.Status": "Active",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}
