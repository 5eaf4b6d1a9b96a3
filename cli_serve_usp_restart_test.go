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
	"paradrop/usp/codec"
)

// A real daemon killed (SIGKILL) while an InstallDU's package is being
// downloaded and unpacked comes back consistent: no DU, no staging
// directory; its controller is told the truth (OperationComplete failed,
// saying why, and DUStateChange! Failed), and the same Operate sent again
// (same msg_id) gets the first answer and installs nothing. A package
// installed before a second kill is not installed again by its Operate
// redelivered after it.
func TestServeUSPKilledMidInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the chute manager needs root")
	}
	pkg, err := examples.Package("name: uspkill\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
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
	// The same Operate again (a QoS 1 redelivery, or the controller's
	// retry): the first answer, nothing run.
	ctrl.publish(stalled)
	if again, _ := ctrl.next("answer again", isFirst); !bytes.Equal(first, again) {
		t.Error("the Operate sent again after the restart got another answer")
	}
	noMore("kill-mid-download", 2*time.Second)
	if n := dus(); n != "0" {
		t.Errorf("%s DUs after the redelivery", n)
	}

	// Installed, then killed: its Operate sent again installs nothing.
	whole := installRecord("install-then-kill", web.URL+"/whole.tgz")
	ctrl.publish(whole)
	isWhole := func(m *codec.Msg) bool { return m.Header.MsgId == "install-then-kill" }
	wholeAnswer, _ := ctrl.next("answer", isWhole)
	if oc := completeOf("install-then-kill"); oc.GetReqOutputArgs() == nil {
		t.Fatalf("OperationComplete %v", oc)
	}
	kill()
	ctrl.publish(whole)
	if again, _ := ctrl.next("answer again", isWhole); !bytes.Equal(wholeAnswer, again) {
		t.Error("the Operate sent again after the restart got another answer")
	}
	noMore("install-then-kill", 2*time.Second)
	if n := dus(); n != "1" {
		t.Errorf("%s DUs, want 1", n)
	}
}
