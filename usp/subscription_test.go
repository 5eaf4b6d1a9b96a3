package usp

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"paradrop/chute"
	"paradrop/usp/codec"
)

// send sends req under message ID id and returns the answer.
func send(t *testing.T, a *Agent, from, id string, req *codec.Request) *codec.Msg {
	t.Helper()
	msg := &codec.Msg{Header: &codec.Header{MsgId: id, MsgType: codec.Header_ADD}, Body: &codec.Body{MsgBody: &codec.Body_Request{Request: req}}}
	data, err := codec.Wrap(msg, from, agentID)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := codec.Unwrap(a.Handle(data), from, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func addSub(partial bool, settings ...string) *codec.Request {
	obj := &codec.Add_CreateObject{ObjPath: "Device.LocalAgent.Subscription."}
	for i := 0; i+1 < len(settings); i += 2 {
		obj.ParamSettings = append(obj.ParamSettings, &codec.Add_CreateParamSetting{Param: settings[i], Value: settings[i+1]})
	}
	return &codec.Request{ReqType: &codec.Request_Add{Add: &codec.Add{AllowPartial: partial, CreateObjs: []*codec.Add_CreateObject{obj}}}}
}

func setSub(path string, settings ...string) *codec.Request {
	obj := &codec.Set_UpdateObject{ObjPath: path}
	for i := 0; i+1 < len(settings); i += 2 {
		obj.ParamSettings = append(obj.ParamSettings, &codec.Set_UpdateParamSetting{Param: settings[i], Value: settings[i+1]})
	}
	return &codec.Request{ReqType: &codec.Request_Set{Set: &codec.Set{UpdateObjs: []*codec.Set_UpdateObject{obj}}}}
}

func deleteSub(paths ...string) *codec.Request {
	return &codec.Request{ReqType: &codec.Request_Delete{Delete: &codec.Delete{ObjPaths: paths}}}
}

// drain returns the notifications queued.
func drain(a *Agent) []outgoing {
	var out []outgoing
	for {
		select {
		case o := <-a.outbox:
			out = append(out, o)
		default:
			return out
		}
	}
}

// A controller subscribes to the EUs' Status and is told when one changes,
// under its subscription's ID; disabled, deleted, it is not. Each
// controller sees and writes its own subscriptions only.
func TestSubscriptionValueChange(t *testing.T) {
	a, chutes := scopedAgent(t)
	m := send(t, a, ctrlID, "a-1", addSub(false, "ID", "eu-status", "Enable", "true", "NotifType", "ValueChange",
		"ReferenceList", "Device.SoftwareModules.ExecutionUnit.*.Status,Device.DeviceInfo.UpTime", "NotifRetry", "true"))
	ok := m.GetBody().GetResponse().GetAddResp().GetCreatedObjResults()[0].GetOperStatus().GetOperSuccess()
	if m.Header.MsgType != codec.Header_ADD_RESP || ok.GetInstantiatedPath() != "Device.LocalAgent.Subscription.1." ||
		ok.UniqueKeys["ID"] != "eu-status" || ok.UniqueKeys["Recipient"] != "Device.LocalAgent.Controller.1" {
		t.Fatalf("answer %v", m)
	}
	if got := flat(ask(t, a, devCtrl, getReq(0, "Device.LocalAgent.Subscription.")).Body.GetResponse().GetGetResp()); len(got) != 0 {
		t.Errorf("another controller sees %q", got)
	}
	if c := errOf(send(t, a, devCtrl, "d-1", deleteSub("Device.LocalAgent.Subscription.1."))); c != codeInvalidPath {
		t.Errorf("another controller deletes: %d", c)
	}

	a.valueChanges() // the first look
	if n := drain(a); len(n) != 0 {
		t.Fatalf("notified at first look: %v", n)
	}
	(*chutes)[0].State = chute.Stopping
	a.valueChanges()
	n := drain(a)
	if len(n) != 1 || n[0].to != ctrlID {
		t.Fatalf("notifications %v", n)
	}
	nt := n[0].msg.GetBody().GetRequest().GetNotify()
	vc := nt.GetValueChange()
	if nt.SubscriptionId != "eu-status" || !nt.SendResp || vc.GetParamPath() != "Device.SoftwareModules.ExecutionUnit.1.Status" || vc.GetParamValue() != "Stopping" {
		t.Errorf("notification %v", nt)
	}

	if c := send(t, a, ctrlID, "s-1", setSub("Device.LocalAgent.Subscription.[ID==\"eu-status\"].", "Enable", "false")); c.GetBody().GetResponse().GetSetResp() == nil {
		t.Fatalf("set: %v", c)
	}
	(*chutes)[0].State = chute.Stopped
	a.valueChanges()
	if n := drain(a); len(n) != 0 {
		t.Errorf("disabled, notified %v", n)
	}
	send(t, a, ctrlID, "s-2", setSub("Device.LocalAgent.Subscription.1.", "Enable", "true"))
	m = send(t, a, ctrlID, "d-2", deleteSub("Device.LocalAgent.Subscription.*."))
	if p := m.GetBody().GetResponse().GetDeleteResp().GetDeletedObjResults()[0].GetOperStatus().GetOperSuccess().GetAffectedPaths(); len(p) != 1 {
		t.Fatalf("delete: %v", m)
	}
	(*chutes)[0].State = chute.Running
	a.valueChanges()
	if n := drain(a); len(n) != 0 {
		t.Errorf("deleted, notified %v", n)
	}
}

// Refused subscriptions add nothing; a controller's are bounded.
func TestSubscriptionRefusals(t *testing.T) {
	a, _ := scopedAgent(t)
	for i, tc := range []struct {
		req  *codec.Request
		code uint32
	}{
		{addSub(false, "NotifType", "Bogus", "ReferenceList", "Device."), codeInvalidValue},
		{addSub(false, "NotifType", "ValueChange", "ReferenceList", "Device..x"), codeInvalidValue},
		{addSub(false, "NotifType", "ValueChange", "ReferenceList", "Device.", "Recipient", "Device.LocalAgent.Controller.1"), codeNotWritable},
		{addSub(false, "NotifType", "ValueChange", "ReferenceList", "Device.", "Nope", "x"), codeUnknownParam},
		{addSub(false, "NotifType", "ValueChange"), codeInvalidValue},
		{addSub(false, "NotifType", "ValueChange", "ReferenceList", strings.Repeat("Device.,", 17)), codeInvalidValue},
		{&codec.Request{ReqType: &codec.Request_Add{Add: &codec.Add{CreateObjs: []*codec.Add_CreateObject{{ObjPath: "Device.SoftwareModules.DeploymentUnit."}}}}}, codeNotCreatable},
	} {
		if c := errOf(send(t, a, ctrlID, fmt.Sprint("r-", i), tc.req)); c != tc.code {
			t.Errorf("%v: code %d, want %d", tc.req, c, tc.code)
		}
	}
	for i := range maxSubscriptions {
		m := send(t, a, ctrlID, fmt.Sprint("ok-", i), addSub(false, "NotifType", "Event", "ReferenceList", "Device."))
		if m.GetBody().GetResponse().GetAddResp() == nil {
			t.Fatalf("subscription %d: %v", i, m)
		}
	}
	if c := errOf(send(t, a, ctrlID, "one-more", addSub(false, "NotifType", "Event", "ReferenceList", "Device."))); c != codeResources {
		t.Errorf("subscription %d: code %d", maxSubscriptions+1, c)
	}
	if c := errOf(send(t, a, devCtrl, "dev", addSub(false, "ID", "1-x", "NotifType", "Event", "ReferenceList", "Device."))); c != 0 {
		t.Errorf("another controller's first: code %d", c)
	}
	if c := errOf(send(t, a, devCtrl, "dev-2", addSub(false, "ID", "1-x", "NotifType", "Event", "ReferenceList", "Device."))); c != codeDuplicateKey {
		t.Errorf("same ID again: code %d", c)
	}
}

// A notification that asks a NotifyResp is sent again until answered, a
// bounded number of times.
func TestPendingNotify(t *testing.T) {
	p := newPending()
	w := &waiting{o: outgoing{to: ctrlID, msg: &codec.Msg{Header: &codec.Header{MsgId: "n-1"}, Body: &codec.Body{MsgBody: &codec.Body_Request{
		Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: &codec.Notify{SendResp: true}}}}}}}}
	for i := 1; i < maxTries; i++ {
		if p.sent(w, false, time.Millisecond) {
			t.Fatal("given up early")
		}
		time.Sleep(time.Duration(1<<i) * time.Millisecond)
		if d := p.due(time.Now()); len(d) != 1 {
			t.Fatalf("try %d: due %d", i, len(d))
		}
	}
	p.sent(w, false, time.Millisecond)
	if len(p.m) != 0 {
		t.Error("kept after the last try")
	}
	w.tries = 0
	p.sent(w, false, time.Millisecond)
	p.ack(ctrlID, "n-1")
	if len(p.m) != 0 {
		t.Error("kept once answered")
	}
}

func errOf(m *codec.Msg) uint32 { return m.GetBody().GetError().GetErrCode() }

// FuzzSubscription: any Add, Set and Delete of subscriptions gets an
// answer, never a panic, and a controller never holds more than its bound.
func FuzzSubscription(f *testing.F) {
	f.Add("ID", "x", "ReferenceList", "Device.SoftwareModules.ExecutionUnit.*.Status", "Device.LocalAgent.Subscription.1.", true)
	f.Add("NotifType", "Event", "ReferenceList", "Device.SoftwareModules.DUStateChange!,Device.", "Device.LocalAgent.Subscription.*.", false)
	f.Add("Enable", "true", "ReferenceList", "Device.[a==\"b\"].x()", `Device.LocalAgent.Subscription.[ID=="x"].`, true)
	f.Fuzz(func(t *testing.T, p1, v1, p2, v2, path string, partial bool) {
		for _, s := range []string{p1, v1, p2, v2, path} {
			if !utf8.ValidString(s) {
				return // protobuf's strings are UTF-8: no controller sends it
			}
		}
		a, _ := scopedAgent(t)
		for i := range 3 {
			m := send(t, a, ctrlID, fmt.Sprint("a", i), addSub(partial, p1, v1, p2, v2, "NotifType", "ValueChange"))
			if m.GetBody().GetError() == nil && m.GetBody().GetResponse().GetAddResp() == nil {
				t.Fatalf("answer %v", m)
			}
		}
		send(t, a, ctrlID, "s", setSub(path, p1, v1, p2, v2))
		send(t, a, ctrlID, "d", deleteSub(path))
		a.valueChanges()
		if n := len(a.subs.all); n > 3 {
			t.Fatalf("%d subscriptions", n)
		}
	})
}

func TestRefMatches(t *testing.T) {
	for _, tc := range []struct {
		ref, path string
		want      bool
	}{
		{"Device.SoftwareModules.DUStateChange!", "Device.SoftwareModules.DUStateChange!", true},
		{"Device.SoftwareModules.", "Device.SoftwareModules.DUStateChange!", true},
		{"Device.", "Device.Boot!", true},
		{"Device.SoftwareModules.DeploymentUnit.*.Update()", "Device.SoftwareModules.DeploymentUnit.3.Update()", true},
		{"Device.SoftwareModules.DeploymentUnit.*.", "Device.SoftwareModules.DeploymentUnit.3.Uninstall()", true},
		{"Device.SoftwareModules.DeploymentUnit.2.Update()", "Device.SoftwareModules.DeploymentUnit.3.Update()", false},
		{"Device.SoftwareModules.DeploymentUnit.*.Update()", "Device.SoftwareModules.DeploymentUnit.x.Update()", false},
		{"Device.Soft", "Device.SoftwareModules.DUStateChange!", false},
		{"Device.SoftwareModules.DUStateChange", "Device.SoftwareModules.DUStateChange!", false},
	} {
		if got := refMatches(tc.ref, tc.path); got != tc.want {
			t.Errorf("%s on %s: %v", tc.ref, tc.path, got)
		}
	}
}
