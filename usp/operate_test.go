package usp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"paradrop/chute"
	"paradrop/usp/codec"
)

const devCtrl = "self::dev"

// operate sends an Operate with message ID id and returns the raw answer
// and its message.
func operate(t *testing.T, a *Agent, from, id, command string, args map[string]string) ([]byte, *codec.Msg) {
	t.Helper()
	msg := &codec.Msg{Header: &codec.Header{MsgId: id, MsgType: codec.Header_OPERATE}, Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{
		ReqType: &codec.Request_Operate{Operate: &codec.Operate{Command: command, CommandKey: "k-" + id, SendResp: true, InputArgs: args}}}}}}
	data, err := codec.Wrap(msg, from, agentID)
	if err != nil {
		t.Fatal(err)
	}
	out := a.Handle(data)
	if out == nil {
		t.Fatal("no answer")
	}
	_, got, err := codec.Unwrap(out, from, 1<<20)
	if err != nil || got.Header.MsgId != id {
		t.Fatalf("answer %v: %v", got, err)
	}
	return out, got
}

func scopedAgent(t *testing.T) (*Agent, *fakeChutes) {
	chutes := twoChutes()
	(*chutes)[1].Owner = "acme" // web is the developer's, hello the operator's
	a := testAgent(t, chutes, func(c *Config) {
		c.Controllers = map[string]Controller{ctrlID: {Topic: "usp/controllers/ctrl"}, devCtrl: {Topic: "usp/controllers/dev", Developer: "acme"}}
	})
	return a, chutes
}

func failure(m *codec.Msg) uint32 {
	if e := m.GetBody().GetError(); e != nil {
		return e.ErrCode
	}
	res := m.GetBody().GetResponse().GetOperateResp().GetOperationResults()
	if len(res) != 1 {
		return 1
	}
	return res[0].GetCmdFailure().GetErrCode()
}

// An Operate delivered twice (same controller, same message ID) runs once
// and gets the same answer; a new message ID runs again.
func TestOperateRunsOnce(t *testing.T) {
	a, chutes := scopedAgent(t)
	restart := "Device.SoftwareModules.ExecutionUnit.1.Restart()"
	first, m := operate(t, a, ctrlID, "op-1", restart, nil)
	if failure(m) != 0 || m.Header.MsgType != codec.Header_OPERATE_RESP {
		t.Fatalf("answer %v", m)
	}
	again, _ := operate(t, a, ctrlID, "op-1", restart, nil)
	if !bytes.Equal(first, again) {
		t.Error("the redelivery got another answer")
	}
	if r := (*chutes)[0].Restarts; r != 1 {
		t.Fatalf("restarted %d times, want 1", r)
	}
	operate(t, a, ctrlID, "op-2", restart, nil)
	// The same message ID from another controller is another message.
	operate(t, a, devCtrl, "op-2", "Device.SoftwareModules.ExecutionUnit.2.Restart()", nil)
	if r, r2 := (*chutes)[0].Restarts, (*chutes)[1].Restarts; r != 2 || r2 != 1 {
		t.Fatalf("restarted %d and %d times, want 2 and 1", r, r2)
	}
}

// A developer's controller sees and acts on its developer's chutes only;
// the operator's are answered as objects that do not exist. A stranger
// changes nothing.
func TestOperateScope(t *testing.T) {
	a, chutes := scopedAgent(t)
	for _, tc := range []struct {
		from, cmd string
		args      map[string]string
		code      uint32
	}{
		{devCtrl, "Device.SoftwareModules.ExecutionUnit.1.SetRequestedState()", map[string]string{"RequestedState": "Idle"}, codeInvalidPath},
		{devCtrl, "Device.SoftwareModules.DeploymentUnit.1.Uninstall()", nil, codeInvalidPath},
		{"self::stranger", "Device.SoftwareModules.ExecutionUnit.2.SetRequestedState()", map[string]string{"RequestedState": "Idle"}, codePermission},
		{ctrlID, "Device.SoftwareModules.ExecutionUnit.1.SetRequestedState()", map[string]string{"RequestedState": "Paused"}, codeCommandArgs},
		{ctrlID, "Device.SoftwareModules.ExecutionUnit.1.Nope()", nil, codeInvalidPath},
		{ctrlID, "Device.SoftwareModules.ExecutionUnit.1.Status", nil, codePathSyntax},
	} {
		if _, m := operate(t, a, tc.from, "x-"+tc.cmd, tc.cmd, tc.args); failure(m) != tc.code {
			t.Errorf("%s %s: answer %v, want %d", tc.from, tc.cmd, m, tc.code)
		}
	}
	if len(*chutes) != 2 || (*chutes)[0].State != chute.Running || (*chutes)[1].Desired != chute.Running {
		t.Fatalf("chutes changed: %+v", *chutes)
	}
	// A wildcard reaches the developer's own only.
	if _, m := operate(t, a, devCtrl, "y", "Device.SoftwareModules.ExecutionUnit.*.SetRequestedState()", map[string]string{"RequestedState": "Idle"}); failure(m) != 0 {
		t.Fatalf("answer %v", m)
	}
	if (*chutes)[0].Desired != chute.Running || (*chutes)[1].Desired != chute.Stopped {
		t.Fatalf("chutes: %+v", *chutes)
	}
	got := flat(ask(t, a, devCtrl, getReq(0, "Device.SoftwareModules.DeploymentUnit.*.Name")).Body.GetResponse().GetGetResp())
	if len(got) != 1 || got[0] != "Device.SoftwareModules.DeploymentUnit.2.Name=web" {
		t.Errorf("the developer's controller sees %q", got)
	}
}

// An install from what is not an http(s) URL answers with its request,
// then fails in OperationComplete and DUStateChange!.
func TestInstallDURefusesURL(t *testing.T) {
	a, chutes := scopedAgent(t)
	a.cfg.Origin = func(string, chute.Actor) (chute.Origin, error) { return chute.Origin{}, nil }
	_, m := operate(t, a, devCtrl, "i-1", "Device.SoftwareModules.InstallDU()", map[string]string{"URL": "file:///etc/shadow"})
	res := m.GetBody().GetResponse().GetOperateResp().GetOperationResults()
	if len(res) != 1 || res[0].GetReqObjPath() != "Device.LocalAgent.Request.1." || res[0].ExecutedCommand != "Device.SoftwareModules.InstallDU()" {
		t.Fatalf("answer %v", m)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case o := <-a.outbox:
			n := o.msg.GetBody().GetRequest().GetNotify()
			if o.to != devCtrl && n.GetEvent() == nil {
				t.Errorf("OperationComplete to %s", o.to)
			}
			if oc := n.GetOperComplete(); oc != nil {
				seen["complete"] = true
				if oc.GetCmdFailure().GetErrCode() != codeCommandArgs || oc.CommandKey != "k-i-1" || oc.CommandName != "InstallDU()" {
					t.Errorf("OperationComplete %v", oc)
				}
			}
			if ev := n.GetEvent(); ev != nil {
				seen["event to "+o.to] = true
				if ev.EventName != "DUStateChange!" || ev.Params["CurrentState"] != "Failed" || ev.Params["Fault.FaultCode"] != "7027" {
					t.Errorf("event %v", ev)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("notifications: %v", seen)
		}
	}
	if len(*chutes) != 2 {
		t.Fatal("chutes changed")
	}
}

// FuzzOperate: any command path and arguments from a trusted controller
// get an answer, never a panic, and never touch a chute they do not name.
func FuzzOperate(f *testing.F) {
	f.Add("Device.SoftwareModules.ExecutionUnit.1.SetRequestedState()", "RequestedState", "Idle")
	f.Add(`Device.SoftwareModules.ExecutionUnit.[Name=="web"].Restart()`, "", "")
	f.Add("Device.SoftwareModules.InstallDU()", "URL", "gopher://x")
	f.Add("Device.SoftwareModules.DeploymentUnit.*.Update()", "URL", "http://")
	f.Add("().()", "", "")
	f.Fuzz(func(t *testing.T, cmd, k, v string) {
		a, _ := scopedAgent(t)
		msg := &codec.Msg{Header: &codec.Header{MsgId: "f", MsgType: codec.Header_OPERATE}, Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{
			ReqType: &codec.Request_Operate{Operate: &codec.Operate{Command: cmd, SendResp: true, InputArgs: map[string]string{k: v}}}}}}}
		data, err := codec.Wrap(msg, devCtrl, agentID)
		if err != nil {
			return
		}
		if a.Handle(data) == nil {
			t.Fatal("no answer")
		}
	})
}

// GetSupportedDM tells the commands, sync or async with their arguments,
// and the events.
func TestSupportedCommands(t *testing.T) {
	a, _ := scopedAgent(t)
	m := ask(t, a, ctrlID, &codec.Request{ReqType: &codec.Request_GetSupportedDm{GetSupportedDm: &codec.GetSupportedDM{
		ObjPaths: []string{"Device.SoftwareModules.", "Device."}, FirstLevelOnly: true, ReturnCommands: true, ReturnEvents: true}}})
	got := map[string]string{}
	for _, r := range m.GetBody().GetResponse().GetGetSupportedDmResp().GetReqObjResults() {
		for _, o := range r.SupportedObjs {
			for _, c := range o.SupportedCommands {
				got[o.SupportedObjPath+c.CommandName] = c.CommandType.String() + " " + strings.Join(c.InputArgNames, ",") + " -> " + strings.Join(c.OutputArgNames, ",")
			}
			for _, e := range o.SupportedEvents {
				got[o.SupportedObjPath+e.EventName] = strings.Join(e.ArgNames, ",")
			}
		}
	}
	for k, v := range map[string]string{
		"Device.SoftwareModules.InstallDU()":    "CMD_ASYNC URL,ExecutionEnvRef," + argSignatureURL + " -> DeploymentUnitRef",
		"Device.SoftwareModules.DUStateChange!": "UUID,DeploymentUnitRef,Version,CurrentState,Resolved,ExecutionUnitRefList,StartTime,CompleteTime,OperationPerformed,Fault.FaultCode,Fault.FaultString",
		"Device.Boot!":                          "CommandKey,Cause,FirmwareUpdated,ParameterMap",
	} {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %v", got)
	}
}

// A developer's controller cannot have the gateway download from itself
// or the home's LAN, by address or by a name that resolves there; the
// operator's can.
func TestDeveloperDownloadsPublicOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:80", false}, {"[::1]:80", false}, {"192.168.1.1:80", false}, {"10.0.0.1:443", false},
		{"169.254.169.254:80", false}, {"[fe80::1]:80", false}, {"0.0.0.0:80", false}, {"100.64.0.1:80", false},
		{"[::ffff:127.0.0.1]:80", false}, {"[fd00::1]:80", false}, {"192.0.2.1:80", false},
		{"93.184.216.34:80", true}, {"[2606:4700::1111]:443", true},
	} {
		if err := publicOnly("tcp", tc.addr, nil); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.addr, err)
		}
	}
	a, _ := scopedAgent(t)
	a.cfg.Origin = func(string, chute.Actor) (chute.Origin, error) { return chute.Origin{}, nil }
	for _, u := range []string{"http://127.0.0.1:9/p.tgz", "http://localhost:9/p.tgz"} {
		operate(t, a, devCtrl, "p-"+u, "Device.SoftwareModules.InstallDU()", map[string]string{"URL": u})
		for {
			o := <-a.outbox
			if oc := o.msg.GetBody().GetRequest().GetNotify().GetOperComplete(); oc != nil {
				if !strings.Contains(oc.GetCmdFailure().GetErrMsg(), "not a public address") {
					t.Errorf("%s: %v", u, oc)
				}
				break
			}
		}
	}
}

// One controller runs at most maxPerController async commands at once, and
// all of them maxOperations.
func TestOperationsBounded(t *testing.T) {
	o := newOperations(maxOperations)
	for i := range maxPerController {
		if _, ok := o.begin(request{from: devCtrl}); !ok {
			t.Fatalf("command %d refused", i)
		}
	}
	if _, ok := o.begin(request{from: devCtrl}); ok {
		t.Fatal("one controller took more than its share")
	}
	var last uint32
	for i := range maxOperations - maxPerController {
		n, ok := o.begin(request{from: fmt.Sprint("self::c", i)})
		if !ok {
			t.Fatalf("another controller's command %d refused", i)
		}
		last = n
	}
	if _, ok := o.begin(request{from: ctrlID}); ok {
		t.Fatal("more than maxOperations")
	}
	o.end(last)
	if _, ok := o.begin(request{from: ctrlID}); !ok {
		t.Fatal("refused once one ended")
	}
}
