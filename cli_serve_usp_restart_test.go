//go:build !router

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"paradrop/examples"
	"paradrop/internal/mosquitto"
	"paradrop/usp"
	"paradrop/usp/codec"
)

// A real daemon killed (SIGKILL) while an InstallDU's package is being
// downloaded and unpacked comes back consistent: no DU, no staging
// directory; its controller is told the truth (OperationComplete failed,
// saying why, and DUStateChange! Failed), and the same Operate sent again
// (same msg_id) gets the first answer and installs nothing. A package
// installed before a second kill is not installed again by its Operate
// redelivered after it. A Persistent subscription (ObjectCreation of DUs)
// outlives the restarts and is told of the install; a non-persistent one
// is gone. Killed while the chute manager judges an update, the daemon
// comes back on the former version, and the controller is told the update
// failed.
func TestServeUSPKilledMidInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the chute manager needs root")
	}
	pkg, err := examples.Package("name: uspkill\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	// 2.0.0 must stay up a minute before its update commits: long
	// enough to kill the daemon while it judges it.
	v2, err := examples.Package("name: uspkill\nversion: 2.0.0\ncommand: [/bin/sleep, \"1000\"]\nupdate:\n  stable_for: 1m\n  timeout: 2m\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	halfSent := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stall.tgz": // half the package, then nothing
			w.Header().Set("Content-Length", fmt.Sprint(len(pkg)))
			w.Write(pkg[:len(pkg)/2])
			w.(http.Flusher).Flush()
			once.Do(func() { close(halfSent) })
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/whole.tgz":
			w.Write(pkg)
		case "/v2.tgz":
			w.Write(v2)
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	defer close(release)

	b := mosquitto.Start(t)
	const agentID = "os::kill-test"
	ctrl := newUSPController(t, b, agentID, "self::ctrl", "usp/controllers/ctrl")
	isBoot := func(m *codec.Msg) bool {
		return m.GetBody().GetRequest().GetNotify().GetEvent().GetEventName() == "Boot!"
	}
	top := t.TempDir()
	d := &daemon{t: t, bin: buildBinary(t), data: filepath.Join(top, "data"), url: "http://" + freePort(t),
		cgroupParent: fmt.Sprintf("/paradrop-uspkill-%d", os.Getpid()),
		args:         []string{"--usp-broker", b.URL(), "--usp-endpoint-id", agentID, "--usp-controller", "self::ctrl=usp/controllers/ctrl"}}
	d.start()
	t.Cleanup(func() {
		d.cli("chute", "remove", "uspkill", "--yes")
		d.cmd.Process.Kill()
		d.cmd.Wait()
		dropCgroupParent(t, d.cgroupParent)
	})
	ctrl.next("Boot!", isBoot)
	kill := func() {
		t.Helper()
		d.cmd.Process.Kill()
		d.cmd.Wait()
		d.start()
		ctrl.next("Boot! after the restart", isBoot)
	}
	dus := func() string { return ctrl.get("Device.SoftwareModules.DeploymentUnitNumberOfEntries") }
	stagingDirs := func() int {
		ents, _ := os.ReadDir(filepath.Join(d.data, "staging"))
		return len(ents)
	}
	installRecord := func(msgID, url string) []byte {
		data, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: msgID, MsgType: codec.Header_OPERATE},
			Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
				Command: "Device.SoftwareModules.InstallDU()", CommandKey: "key-" + msgID, SendResp: true,
				InputArgs: map[string]string{"URL": url}}}}}}}, "self::ctrl", agentID)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	completeOf := func(msgID string) *codec.Notify_OperationComplete {
		_, m := ctrl.next("OperationComplete of "+msgID, func(m *codec.Msg) bool {
			return m.GetBody().GetRequest().GetNotify().GetOperComplete().GetCommandKey() == "key-"+msgID
		})
		return m.GetBody().GetRequest().GetNotify().GetOperComplete()
	}
	// noMore fails if another OperationComplete of msgID comes within d.
	noMore := func(msgID string, wait time.Duration) {
		t.Helper()
		deadline := time.After(wait)
		for {
			select {
			case m := <-ctrl.in:
				_, msg, err := codec.Unwrap(m.Payload(), ctrl.from, 1<<20)
				if err == nil && msg.GetBody().GetRequest().GetNotify().GetOperComplete().GetCommandKey() == "key-"+msgID {
					t.Fatalf("%s ran again: %v", msgID, msg)
				}
			case <-deadline:
				return
			}
		}
	}

	// Subscriptions: the persistent one outlives the restarts, the other
	// does not.
	ctrl.addSubscription("ID", "du-created", "Enable", "true", "NotifType", "ObjectCreation",
		"ReferenceList", "Device.SoftwareModules.DeploymentUnit.", "Persistent", "true")
	ctrl.addSubscription("ID", "transient", "Enable", "true", "NotifType", "ObjectCreation",
		"ReferenceList", "Device.SoftwareModules.ExecutionUnit.")
	subscriptions := func() string {
		ids := ctrl.getAll("Device.LocalAgent.Subscription.*.ID")
		return fmt.Sprint(ids)
	}

	// sentAgain publishes an Operate's record again, after a restart: it
	// gets the first answer, runs nothing, and leaves dus DUs.
	sentAgain := func(rec []byte, msgID string, answer []byte, wantDUs string) {
		t.Helper()
		ctrl.publish(rec)
		if again, _ := ctrl.next("answer again", func(m *codec.Msg) bool { return m.Header.MsgId == msgID }); !bytes.Equal(answer, again) {
			t.Errorf("%s sent again after the restart got another answer", msgID)
		}
		noMore(msgID, 2*time.Second)
		if n := dus(); n != wantDUs {
			t.Errorf("%s DUs after %s sent again, want %s", n, msgID, wantDUs)
		}
	}

	// Killed mid-download: nothing installed, and told so.
	stalled := installRecord("kill-mid-download", web.URL+"/stall.tgz")
	ctrl.publish(stalled)
	isFirst := func(m *codec.Msg) bool { return m.Header.MsgId == "kill-mid-download" }
	first, answer := ctrl.next("answer", isFirst)
	if !strings.HasPrefix(answer.GetBody().GetResponse().GetOperateResp().GetOperationResults()[0].GetReqObjPath(), "Device.LocalAgent.Request.") {
		t.Fatalf("answer %v", answer)
	}
	select {
	case <-halfSent:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not download the package")
	}
	kill()
	oc := completeOf("kill-mid-download")
	if f := oc.GetCmdFailure(); f.GetErrCode() != 7022 || !strings.Contains(f.GetErrMsg(), "restart") {
		t.Errorf("OperationComplete after the restart: %v", oc)
	}
	if _, ev := ctrl.duEvent("Install"); ev["CurrentState"] != "Failed" || !strings.Contains(ev["Fault.FaultString"], "restart") {
		t.Errorf("DUStateChange! %v", ev)
	}
	if n := dus(); n != "0" || stagingDirs() != 0 {
		t.Errorf("%s DUs, %d staging directories after the restart", n, stagingDirs())
	}
	if got := subscriptions(); got != "map[Device.LocalAgent.Subscription.1.ID:du-created]" {
		t.Errorf("subscriptions after the restart: %s", got)
	}
	// The same Operate again (a QoS 1 redelivery, or the controller's
	// retry): the first answer, nothing run.
	sentAgain(stalled, "kill-mid-download", first, "0")

	// Installed, then killed: its Operate sent again installs nothing.
	whole := installRecord("install-then-kill", web.URL+"/whole.tgz")
	ctrl.publish(whole)
	wholeAnswer, _ := ctrl.next("answer", func(m *codec.Msg) bool { return m.Header.MsgId == "install-then-kill" })
	if oc := completeOf("install-then-kill"); oc.GetReqOutputArgs() == nil {
		t.Fatalf("OperationComplete %v", oc)
	}
	// The persistent subscription, made before the restart, is told.
	_, created := ctrl.next("ObjectCreation", func(m *codec.Msg) bool { return m.GetBody().GetRequest().GetNotify().GetObjCreation() != nil })
	if n := created.GetBody().GetRequest().GetNotify(); n.SubscriptionId != "du-created" ||
		n.GetObjCreation().ObjPath != "Device.SoftwareModules.DeploymentUnit.1." || n.GetObjCreation().UniqueKeys["DUID"] != "uspkill" {
		t.Errorf("ObjectCreation %v", n)
	}
	kill()
	sentAgain(whole, "install-then-kill", wholeAnswer, "1")

	// Killed while the chute manager judges an update: the manager puts
	// the former version back, and the controller is told so.
	update, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "update-then-kill", MsgType: codec.Header_OPERATE},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
			Command: "Device.SoftwareModules.DeploymentUnit.1.Update()", CommandKey: "key-update-then-kill", SendResp: true,
			InputArgs: map[string]string{"URL": web.URL + "/v2.tgz"}}}}}}}, "self::ctrl", agentID)
	if err != nil {
		t.Fatal(err)
	}
	ctrl.publish(update)
	updateAnswer, _ := ctrl.next("answer", func(m *codec.Msg) bool { return m.Header.MsgId == "update-then-kill" })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _, _ := d.cli("changes", "--json")
		if strings.Contains(out, "judging uspkill 2.0.0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the update never ran: %s", out)
		}
	}
	kill()
	oc = completeOf("update-then-kill")
	if f := oc.GetCmdFailure(); f.GetErrCode() != 7022 || !strings.Contains(f.GetErrMsg(), "restart") {
		t.Errorf("OperationComplete of the update after the restart: %v", oc)
	}
	if _, ev := ctrl.duEvent("Update"); ev["CurrentState"] != "Installed" || ev["Version"] != "1.0.0" || ev["Fault.FaultCode"] == "0" {
		t.Errorf("DUStateChange! %v", ev)
	}
	ctrl.waitValue("Device.SoftwareModules.DeploymentUnit.1.Version", "1.0.0")
	ctrl.waitValue("Device.SoftwareModules.ExecutionUnit.1.Status", "Active")
	sentAgain(update, "update-then-kill", updateAnswer, "1")
	if v := ctrl.get("Device.SoftwareModules.DeploymentUnit.1.Version"); v != "1.0.0" {
		t.Errorf("version %s after the update sent again", v)
	}
}

// getAll returns the values of the parameters path names, by path.
func (c *uspController) getAll(path string) map[string]string {
	c.t.Helper()
	id := c.request(&codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{ParamPaths: []string{path}}}}, codec.Header_GET)
	_, m := c.next("answer to Get "+path, func(m *codec.Msg) bool { return m.Header.MsgId == id })
	out := map[string]string{}
	for _, r := range m.GetBody().GetResponse().GetGetResp().GetReqPathResults() {
		for _, res := range r.ResolvedPathResults {
			for k, v := range res.ResultParams {
				out[res.ResolvedPath+k] = v
			}
		}
	}
	return out
}

// addSubscription makes a subscription through the agent and returns its
// instance path.
func (c *uspController) addSubscription(settings ...string) string {
	c.t.Helper()
	obj := &codec.Add_CreateObject{ObjPath: "Device.LocalAgent.Subscription."}
	for i := 0; i+1 < len(settings); i += 2 {
		obj.ParamSettings = append(obj.ParamSettings, &codec.Add_CreateParamSetting{Param: settings[i], Value: settings[i+1]})
	}
	id := c.request(&codec.Request{ReqType: &codec.Request_Add{Add: &codec.Add{CreateObjs: []*codec.Add_CreateObject{obj}}}}, codec.Header_ADD)
	_, m := c.next("answer to Add", func(m *codec.Msg) bool { return m.Header.MsgId == id })
	res := m.GetBody().GetResponse().GetAddResp().GetCreatedObjResults()
	if len(res) != 1 || res[0].GetOperStatus().GetOperSuccess() == nil {
		c.t.Fatalf("Add subscription: %v", m)
	}
	return res[0].GetOperStatus().GetOperSuccess().GetInstantiatedPath()
}

// valueChange waits for a ValueChange of path to value.
func (c *uspController) valueChange(path, value string) {
	c.t.Helper()
	c.next("ValueChange "+path+" = "+value, func(m *codec.Msg) bool {
		vc := m.GetBody().GetRequest().GetNotify().GetValueChange()
		return vc.GetParamPath() == path && vc.GetParamValue() == value
	})
}

// The broker stopped (killed) and started again: chutes keep running and
// the local API answers meanwhile; the agent reconnects (TR-369's backoff),
// subscribes again, answers its controller, and delivers the
// notifications raised while the broker was away: a ValueChange of the
// chute stopped through the API, the DUStateChange! of a chute installed
// through it; the fleet's controller sees the gateway online again.
func TestServeUSPBrokerRestart(t *testing.T) {
	b := mosquitto.Start(t)
	const agentID, fleetID = "os::broker-restart", "self::fleet-br"
	ctrl := newUSPController(t, b, agentID, "self::ctrl", "usp/controllers/ctrl")
	fc := runFleetServer(t, b.URL(), fleetID, time.Second)
	d := startLimitedDaemon(t, serveOptions{maxUpload: 8 << 20, usp: uspOptions{broker: b.URL(), endpointID: agentID,
		controllers: map[string]usp.Controller{"self::ctrl": {Topic: "usp/controllers/ctrl"}, fleetID: {Topic: "usp/controllers/" + fleetID}}}})
	// seen waits until the fleet's controller saw the gateway online
	// after since.
	seen := func(what string, since time.Time) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			for _, g := range fc.State().Gateways() {
				if g.ID == agentID && g.Online && g.LastSeen.After(since) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the fleet's controller sees %+v", what, fc.State().Gateways())
			}
		}
	}
	seen("before", time.Time{})
	base := "http://" + d.addr
	ctrl.next("Boot!", func(m *codec.Msg) bool {
		return m.GetBody().GetRequest().GetNotify().GetEvent().GetEventName() == "Boot!"
	})
	for _, name := range []string{"uspbr1", "uspbr2"} {
		t.Cleanup(func() { apiCall(t, base, d.token, "DELETE", "/api/v1/chutes/"+name+"?wait=1", "") })
	}
	pkg := func(name string) string {
		p, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	apiCall(t, base, d.token, "POST", "/api/v1/chutes?wait=1", pkg("uspbr1"))
	ctrl.duEvent("Install")
	status := "Device.SoftwareModules.ExecutionUnit.1.Status"
	ctrl.waitValue(status, "Active")
	ctrl.addSubscription("ID", "eu-status", "Enable", "true", "NotifType", "ValueChange", "ReferenceList", "Device.SoftwareModules.ExecutionUnit.*.Status")
	time.Sleep(2 * time.Second) // the subscription's first look (1 s polls)

	b.Stop()
	d.health(t)
	apiCall(t, base, d.token, "POST", "/api/v1/chutes/uspbr1/stop?wait=1", "")
	apiCall(t, base, d.token, "POST", "/api/v1/chutes?wait=1", pkg("uspbr2"))
	time.Sleep(2 * time.Second) // the ValueChange is raised while the broker is away
	restarted := time.Now()
	b.Restart()

	ctrl.valueChange(status, "Idle")
	if _, ev := ctrl.duEvent("Install"); ev["CurrentState"] != "Installed" || ev["DeploymentUnitRef"] != "Device.SoftwareModules.DeploymentUnit.2" {
		t.Errorf("DUStateChange! %v", ev)
	}
	t.Logf("notifications delivered %s after the broker came back", time.Since(restarted).Round(time.Millisecond))
	seen("after the broker restart", restarted)
	if n := ctrl.get("Device.SoftwareModules.DeploymentUnitNumberOfEntries"); n != "2" {
		t.Errorf("%s DUs after the broker restart", n)
	}
}
