package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"paradrop/api"
	"paradrop/chute/signature"
	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
	"paradrop/internal/mosquitto"
	"paradrop/usp"
	"paradrop/usp/codec"
)

// uspController drives a daemon's agent over a real broker.
type uspController struct {
	t       *testing.T
	cl      mqtt.Client
	in      chan mqtt.Message
	agentID string
	from    string // the controller's endpoint ID
	topic   string // where it takes answers
	n       int
	kept    []kept
}

func newUSPController(t *testing.T, b *mosquitto.Broker, agentID, from, topic string) *uspController {
	in := make(chan mqtt.Message, 100)
	return &uspController{t: t, cl: b.Client(t, from, topic+"/#", in), in: in, agentID: agentID, from: from, topic: topic}
}

func (c *uspController) request(req *codec.Request, typ codec.Header_MsgType) string {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("req-%d", c.n)
	data, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: id, MsgType: typ},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: req}}}, c.from, c.agentID)
	if err != nil {
		c.t.Fatal(err)
	}
	c.publish(data)
	return id
}

// publish sends a record to the agent, as MQTT's QoS 1 may more than once.
func (c *uspController) publish(data []byte) {
	c.t.Helper()
	if tok := c.cl.Publish("usp/agents/"+c.agentID+"/reply-to="+strings.ReplaceAll(c.topic, "/", "%2F"), 1, false, data); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.t.Fatal(tok.Error())
	}
}

// next returns the first message, received or kept from before, for which
// match is true; the others are kept for later.
func (c *uspController) next(what string, match func(*codec.Msg) bool) ([]byte, *codec.Msg) {
	c.t.Helper()
	for i, k := range c.kept {
		if match(k.msg) {
			c.kept = append(c.kept[:i:i], c.kept[i+1:]...)
			return k.raw, k.msg
		}
	}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m := <-c.in:
			_, msg, err := codec.Unwrap(m.Payload(), c.from, 1<<20)
			if err != nil {
				continue
			}
			if match(msg) {
				return m.Payload(), msg
			}
			if len(c.kept) < 1000 {
				c.kept = append(c.kept, kept{m.Payload(), msg})
			}
		case <-deadline:
			c.t.Fatalf("no %s", what)
		}
	}
}

type kept struct {
	raw []byte
	msg *codec.Msg
}

// operate runs a command and returns its OperateResp result.
func (c *uspController) operate(cmd string, args map[string]string) *codec.OperateResp_OperationResult {
	c.t.Helper()
	id := c.request(&codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
		Command: cmd, CommandKey: "key-" + cmd, SendResp: true, InputArgs: args}}}, codec.Header_OPERATE)
	_, m := c.next("answer to "+cmd, func(m *codec.Msg) bool { return m.Header.MsgId == id })
	res := m.GetBody().GetResponse().GetOperateResp().GetOperationResults()
	if len(res) != 1 {
		c.t.Fatalf("%s: answer %v", cmd, m)
	}
	return res[0]
}

// complete waits for the OperationComplete of the command key.
func (c *uspController) complete(cmd string) *codec.Notify_OperationComplete {
	c.t.Helper()
	_, m := c.next("OperationComplete of "+cmd, func(m *codec.Msg) bool {
		return m.GetBody().GetRequest().GetNotify().GetOperComplete().GetCommandKey() == "key-"+cmd
	})
	return m.GetBody().GetRequest().GetNotify().GetOperComplete()
}

// duEvent waits for a DUStateChange! of op.
func (c *uspController) duEvent(op string) ([]byte, map[string]string) {
	c.t.Helper()
	raw, m := c.next("DUStateChange! "+op, func(m *codec.Msg) bool {
		ev := m.GetBody().GetRequest().GetNotify().GetEvent()
		return ev.GetEventName() == "DUStateChange!" && ev.Params["OperationPerformed"] == op
	})
	return raw, m.GetBody().GetRequest().GetNotify().GetEvent().Params
}

// get returns one parameter's value.
func (c *uspController) get(path string) string {
	c.t.Helper()
	id := c.request(&codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{ParamPaths: []string{path}}}}, codec.Header_GET)
	_, m := c.next("answer to Get "+path, func(m *codec.Msg) bool { return m.Header.MsgId == id })
	for _, r := range m.GetBody().GetResponse().GetGetResp().GetReqPathResults() {
		for _, res := range r.ResolvedPathResults {
			for _, v := range res.ResultParams {
				return v
			}
		}
	}
	return ""
}

func (c *uspController) waitValue(path, want string) {
	c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := c.get(path)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s = %q, want %q", path, got, want)
		}
	}
}

// A controller installs a signed chute from a URL, stops, starts, updates
// and uninstalls it through a real daemon's agent and a real broker; each
// install, update and uninstall ends with OperationComplete and
// DUStateChange!, an install through the API too; a missing signature URL
// is refused before the package is unpacked.
func TestServeUSPOperate(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler)")
	}
	key := signaturetest.NewKey(t)
	pub, err := signature.ParseKey(key.Line())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		pkg, err := examples.Package("name: uspops\nversion: "+v+"\ncommand: [/bin/sleep, \"1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		files["/uspops-"+v+".tgz"] = pkg
		files["/uspops-"+v+".tgz.minisig"] = key.SignBytes(t, pkg)
	}
	// acme's, signed by its key (the first) and by the operator's.
	acmeKey := signaturetest.NewKey(t)
	for _, name := range []string{"acme1", "acme2"} {
		pkg, err := examples.Package("name: "+name+"\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+name+".tgz"] = pkg
		files["/"+name+".tgz.minisig"] = acmeKey.SignBytes(t, pkg)
		files["/"+name+".tgz.operator.minisig"] = key.SignBytes(t, pkg)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer web.Close()

	b := mosquitto.Start(t)
	const agentID = "os::ops-test"
	ctrl := newUSPController(t, b, agentID, "self::ctrl", "usp/controllers/ctrl")
	dev := newUSPController(t, b, agentID, "self::dev", "usp/controllers/dev")
	stranger := newUSPController(t, b, agentID, "self::stranger", "usp/controllers/stranger")
	d := startLimitedDaemon(t, serveOptions{maxUpload: 8 << 20, signing: api.Signing{Keys: []signature.Key{pub}, Required: true},
		usp: uspOptions{broker: b.URL(), endpointID: agentID, developersReachAll: true, controllers: map[string]usp.Controller{
			"self::ctrl": {Topic: "usp/controllers/ctrl"}, "self::dev": {Topic: "usp/controllers/dev", Developer: "acme"}}}})
	ctrl.next("Boot!", func(m *codec.Msg) bool {
		return m.GetBody().GetRequest().GetNotify().GetEvent().GetEventName() == "Boot!"
	})
	base := "http://" + d.addr
	t.Cleanup(func() { apiCall(t, base, d.token, "DELETE", "/api/v1/chutes/uspops?wait=1", "") })

	t.Run("a missing signature is refused before unpack", func(t *testing.T) {
		ctrl.t = t
		res := ctrl.operate("Device.SoftwareModules.InstallDU()", map[string]string{
			"URL": web.URL + "/uspops-1.0.0.tgz", "X_ParaDrop_SignatureURL": web.URL + "/nope.minisig"})
		if !strings.HasPrefix(res.GetReqObjPath(), "Device.LocalAgent.Request.") {
			t.Fatalf("answer %v", res)
		}
		oc := ctrl.complete("Device.SoftwareModules.InstallDU()")
		if oc.GetCmdFailure().GetErrCode() == 0 || !strings.Contains(oc.GetCmdFailure().GetErrMsg(), "nope.minisig") {
			t.Errorf("OperationComplete %v", oc)
		}
		if _, ev := ctrl.duEvent("Install"); ev["CurrentState"] != "Failed" {
			t.Errorf("DUStateChange! %v", ev)
		}
		if n := ctrl.get("Device.SoftwareModules.DeploymentUnitNumberOfEntries"); n != "0" || d.stagingDirs(t) != 0 {
			t.Errorf("%s DUs, %d staging directories", n, d.stagingDirs(t))
		}
	})
	t.Run("install", func(t *testing.T) {
		ctrl.t = t
		// Delivered twice, as QoS 1 may: it runs once, and both get
		// the same answer.
		data, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "install-once", MsgType: codec.Header_OPERATE},
			Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
				Command: "Device.SoftwareModules.InstallDU()", CommandKey: "key-Device.SoftwareModules.InstallDU()", SendResp: true,
				InputArgs: map[string]string{"URL": web.URL + "/uspops-1.0.0.tgz"}}}}}}}, "self::ctrl", agentID)
		if err != nil {
			t.Fatal(err)
		}
		ctrl.publish(data)
		ctrl.publish(data)
		isAnswer := func(m *codec.Msg) bool { return m.Header.MsgId == "install-once" }
		first, _ := ctrl.next("answer", isAnswer)
		if again, _ := ctrl.next("answer again", isAnswer); !bytes.Equal(first, again) {
			t.Error("the redelivery got another answer")
		}
		oc := ctrl.complete("Device.SoftwareModules.InstallDU()")
		ref := oc.GetReqOutputArgs().GetOutputArgs()["DeploymentUnitRef"]
		if !strings.HasPrefix(ref, "Device.SoftwareModules.DeploymentUnit.") {
			t.Fatalf("OperationComplete %v", oc)
		}
		raw, ev := ctrl.duEvent("Install")
		if ev["CurrentState"] != "Installed" || ev["Version"] != "1.0.0" || ev["Fault.FaultCode"] != "0" || ev["DeploymentUnitRef"] != ref {
			t.Errorf("DUStateChange! %v", ev)
		}
		// protoc reads what the agent sent, independently of its codec.
		rec, msg := protocDecode(t, raw)
		mustHave(t, rec, `from_id: "os::ops-test"`, `to_id: "self::ctrl"`)
		mustHave(t, msg, `msg_type: NOTIFY`, `event_name: "DUStateChange!"`, `value: "Installed"`, `value: "Install"`)
		if url := ctrl.get(ref + ".URL"); url != web.URL+"/uspops-1.0.0.tgz" {
			t.Errorf("URL %q", url)
		}
		// What the chute uses, as the usage sampler saw it.
		eu := strings.Replace(ref, "DeploymentUnit", "ExecutionUnit", 1)
		for deadline := time.Now().Add(10 * time.Second); ctrl.get(eu+".MemoryInUse") == "0"; time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%s.MemoryInUse stays 0", eu)
				break
			}
		}
	})
	eu := "Device.SoftwareModules.ExecutionUnit.[Name==\"uspops\"]."
	t.Run("others' controllers touch nothing", func(t *testing.T) {
		ctrl.t, dev.t, stranger.t = t, t, t
		if n := dev.get("Device.SoftwareModules.DeploymentUnitNumberOfEntries"); n != "0" {
			t.Errorf("the developer's controller sees %s DUs", n)
		}
		for c, code := range map[*uspController]uint32{dev: 7026, stranger: 7006} {
			id := c.request(&codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
				Command: "Device.SoftwareModules.DeploymentUnit.*.Uninstall()", SendResp: true}}}, codec.Header_OPERATE)
			_, m := c.next("answer to "+c.from, func(m *codec.Msg) bool { return m.Header.MsgId == id })
			res := m.GetBody().GetResponse().GetOperateResp().GetOperationResults()
			if e := m.GetBody().GetError(); (e == nil || e.ErrCode != code) && !(code == 7026 && len(res) == 0) {
				t.Errorf("%s: answer %v", c.from, m)
			}
			id = c.request(&codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
				Command: "Device.SoftwareModules.DeploymentUnit.1.Uninstall()", SendResp: true}}}, codec.Header_OPERATE)
			if _, m = c.next("answer to "+c.from, func(m *codec.Msg) bool { return m.Header.MsgId == id }); m.GetBody().GetError().GetErrCode() != code {
				t.Errorf("%s: answer %v", c.from, m)
			}
		}
		time.Sleep(time.Second)
		ctrl.waitValue(eu+"Status", "Active")
	})
	var answered string // a notification answered with NotifyResp
	t.Run("stop and start, told by a subscription", func(t *testing.T) {
		ctrl.t = t
		ctrl.waitValue(eu+"Status", "Active")
		id := ctrl.request(&codec.Request{ReqType: &codec.Request_Add{Add: &codec.Add{CreateObjs: []*codec.Add_CreateObject{{
			ObjPath: "Device.LocalAgent.Subscription.", ParamSettings: []*codec.Add_CreateParamSetting{
				{Param: "ID", Value: "eu"}, {Param: "Enable", Value: "true"}, {Param: "NotifType", Value: "ValueChange"},
				{Param: "ReferenceList", Value: "Device.SoftwareModules.ExecutionUnit.*.Status"}, {Param: "NotifRetry", Value: "true"},
			}}}}}}, codec.Header_ADD)
		if _, m := ctrl.next("AddResp", func(m *codec.Msg) bool { return m.Header.MsgId == id }); m.GetBody().GetResponse().GetAddResp() == nil {
			t.Fatalf("answer %v", m)
		}
		time.Sleep(2 * time.Second) // the subscription's first look
		if res := ctrl.operate(eu+"SetRequestedState()", map[string]string{"RequestedState": "Idle"}); res.GetCmdFailure() != nil {
			t.Fatalf("answer %v", res)
		}
		raw, m := ctrl.next("ValueChange to Idle", func(m *codec.Msg) bool {
			return m.GetBody().GetRequest().GetNotify().GetValueChange().GetParamValue() == "Idle"
		})
		n := m.GetBody().GetRequest().GetNotify()
		if n.SubscriptionId != "eu" || !n.SendResp || !strings.HasSuffix(n.GetValueChange().ParamPath, ".Status") {
			t.Errorf("notification %v", n)
		}
		_, msg := protocDecode(t, raw)
		mustHave(t, msg, `value_change {`, `param_value: "Idle"`, `subscription_id: "eu"`)
		// Not answered, it comes again (after NotifRetry's 5 s); answered,
		// it stops.
		_, m2 := ctrl.next("ValueChange again", func(m2 *codec.Msg) bool { return m2.Header.MsgId == m.Header.MsgId })
		data, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: m2.Header.MsgId, MsgType: codec.Header_NOTIFY_RESP},
			Body: &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_NotifyResp{
				NotifyResp: &codec.NotifyResp{SubscriptionId: "eu"}}}}}}, "self::ctrl", agentID)
		if err != nil {
			t.Fatal(err)
		}
		ctrl.publish(data)
		answered = m2.Header.MsgId
		ctrl.waitValue(eu+"Status", "Idle")
		ctrl.operate(eu+"SetRequestedState()", map[string]string{"RequestedState": "Active"})
		ctrl.waitValue(eu+"Status", "Active")
	})
	du := "Device.SoftwareModules.DeploymentUnit.[Name==\"uspops\"]."
	t.Run("a version not newer needs X_ParaDrop_Force", func(t *testing.T) {
		ctrl.t = t
		for _, force := range []string{"", "true"} {
			args := map[string]string{"URL": web.URL + "/uspops-1.0.0.tgz"}
			if force != "" {
				args["X_ParaDrop_Force"] = force
			}
			ctrl.operate(du+"Update()", args)
			oc := ctrl.complete(du + "Update()")
			_, ev := ctrl.duEvent("Update")
			switch {
			case force == "" && (oc.GetCmdFailure().GetErrCode() != 7022 || ev["Fault.FaultCode"] != "7022" || ev["CurrentState"] != "Installed"):
				t.Errorf("without force: OperationComplete %v, DUStateChange! %v", oc, ev)
			case force != "" && (oc.GetCmdFailure() != nil || ev["CurrentState"] != "Installed" || ev["Version"] != "1.0.0"):
				t.Errorf("with force: OperationComplete %v, DUStateChange! %v", oc, ev)
			}
		}
		ctrl.waitValue(du+"Version", "1.0.0")
	})
	t.Run("update", func(t *testing.T) {
		ctrl.t = t
		ctrl.operate(du+"Update()", map[string]string{"URL": web.URL + "/uspops-2.0.0.tgz"})
		if oc := ctrl.complete(du + "Update()"); oc.GetCmdFailure() != nil {
			t.Fatalf("OperationComplete %v", oc)
		}
		if _, ev := ctrl.duEvent("Update"); ev["Version"] != "2.0.0" || ev["CurrentState"] != "Installed" {
			t.Errorf("DUStateChange! %v", ev)
		}
		ctrl.waitValue(du+"Version", "2.0.0")
	})
	t.Run("an install through the API is told too", func(t *testing.T) {
		ctrl.t = t
		pkg, err := examples.Package("name: uspapi\nversion: 3.0.0\ncommand: [/bin/sleep, \"1000\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", base+"/api/v1/chutes?wait=1", bytes.NewReader(pkg))
		req.Header.Set("Authorization", "Bearer "+d.token)
		req.Header.Set("Paradrop-Signature", base64.StdEncoding.EncodeToString(key.SignBytes(t, pkg)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("install: %v %v", resp, err)
		}
		resp.Body.Close()
		defer apiCall(t, base, d.token, "DELETE", "/api/v1/chutes/uspapi?wait=1", "")
		if _, ev := ctrl.duEvent("Install"); ev["Version"] != "3.0.0" {
			t.Errorf("DUStateChange! %v", ev)
		}
	})
	t.Run("uninstall", func(t *testing.T) {
		ctrl.t = t
		ctrl.operate(du+"Uninstall()", nil)
		if oc := ctrl.complete(du + "Uninstall()"); oc.GetCmdFailure() != nil {
			t.Fatalf("OperationComplete %v", oc)
		}
		if _, ev := ctrl.duEvent("Uninstall"); ev["CurrentState"] != "Uninstalled" {
			t.Errorf("DUStateChange! %v", ev)
		}
		ctrl.waitValue(`Device.SoftwareModules.DeploymentUnit.[Name=="uspops"].Name`, "")
	})
	t.Run("a developer's controller, on the developer's terms", func(t *testing.T) {
		ctrl.t, dev.t = t, t
		body := fmt.Sprintf(`{"name":"acme","keys":[%q],"quota":{"chutes":1}}`, acmeKey.Line())
		req, _ := http.NewRequest("POST", base+"/api/v1/developers", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+d.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("add developer: %v %v", resp, err)
		}
		resp.Body.Close()
		t.Cleanup(func() { apiCall(t, base, d.token, "DELETE", "/api/v1/chutes/acme1?wait=1", "") })
		install := func(name, sig string) *codec.Notify_OperationComplete {
			t.Helper()
			key := "dev-install-" + name + sig
			id := dev.request(&codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
				Command: "Device.SoftwareModules.InstallDU()", CommandKey: key, SendResp: true,
				InputArgs: map[string]string{"URL": web.URL + "/" + name + ".tgz", "X_ParaDrop_SignatureURL": web.URL + "/" + name + ".tgz" + sig}}}}, codec.Header_OPERATE)
			dev.next("answer", func(m *codec.Msg) bool { return m.Header.MsgId == id })
			_, m := dev.next("OperationComplete", func(m *codec.Msg) bool {
				return m.GetBody().GetRequest().GetNotify().GetOperComplete().GetCommandKey() == key
			})
			return m.GetBody().GetRequest().GetNotify().GetOperComplete()
		}
		// The operator's key does not sign acme's packages.
		if oc := install("acme1", ".operator.minisig"); oc.GetCmdFailure().GetErrCode() != 7006 || !strings.Contains(oc.GetCmdFailure().GetErrMsg(), "not trusted") {
			t.Errorf("signed by the operator's key: %v", oc)
		}
		if _, ev := dev.duEvent("Install"); ev["CurrentState"] != "Failed" {
			t.Errorf("DUStateChange! %v", ev)
		}
		if oc := install("acme1", ".minisig"); oc.GetCmdFailure() != nil {
			t.Fatalf("signed by acme's key: %v", oc)
		}
		// Both controllers are told; the chute is acme's.
		if _, ev := dev.duEvent("Install"); ev["CurrentState"] != "Installed" {
			t.Errorf("DUStateChange! %v", ev)
		}
		if v := ctrl.get(`Device.SoftwareModules.DeploymentUnit.[Name=="acme1"].Vendor`); v != "acme" {
			t.Errorf("acme1's Vendor %q", v)
		}
		// acme's quota is one chute.
		if oc := install("acme2", ".minisig"); oc.GetCmdFailure().GetErrCode() != 7006 || !strings.Contains(oc.GetCmdFailure().GetErrMsg(), "quota") {
			t.Errorf("over quota: %v", oc)
		}
		if n := dev.get("Device.SoftwareModules.DeploymentUnitNumberOfEntries"); n != "1" {
			t.Errorf("acme's controller sees %s DUs", n)
		}
	})
	t.Run("an answered notification and a redelivered install come no more", func(t *testing.T) {
		ctrl.t = t
		time.Sleep(11 * time.Second) // past the answered notification's next retry
		for {
			select {
			case m := <-ctrl.in:
				if _, msg, err := codec.Unwrap(m.Payload(), ctrl.from, 1<<20); err == nil {
					ctrl.kept = append(ctrl.kept, kept{m.Payload(), msg})
				}
				continue
			default:
			}
			break
		}
		for _, k := range ctrl.kept {
			n := k.msg.GetBody().GetRequest().GetNotify()
			if k.msg.Header.MsgId == answered || n.GetOperComplete().GetCommandKey() == "key-Device.SoftwareModules.InstallDU()" {
				t.Errorf("again: %v", k.msg)
			}
		}
	})
}

// protocDecode decodes a record and its message with Debian's protoc.
func protocDecode(t *testing.T, data []byte) (rec, msg string) {
	t.Helper()
	run := func(typ string, in []byte) []byte {
		cmd := exec.Command("protoc", "-Iusp/codec", "--decode="+typ, "usp-record-1-4.proto", "usp-msg-1-4.proto")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("protoc %s: %v", typ, err)
		}
		return out
	}
	var r codec.Record
	if err := proto.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return string(run("usp_record.Record", data)), string(run("usp.Msg", r.GetNoSessionContext().GetPayload()))
}

func mustHave(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("no %q in\n%s", w, text)
		}
	}
}

// serve's agent reaches an ssl:// broker, verifying it with --usp-ca and
// logging in with --usp-username and --usp-password-file.
func TestServeUSPTLS(t *testing.T) {
	b := mosquitto.StartTLS(t, map[string]string{"gw": "s3cret"})
	ca := b.CAFile()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const agentID = "os::tls-test"
	ctrl := newUSPController(t, b, agentID, "self::ctrl", "usp/controllers/ctrl") // on the plain listener
	startLimitedDaemon(t, serveOptions{maxUpload: 8 << 20, usp: uspOptions{broker: b.TLSURL(), endpointID: agentID,
		ca: ca, username: "gw", passwordFile: pw,
		controllers: map[string]usp.Controller{"self::ctrl": {Topic: "usp/controllers/ctrl"}}}})
	ctrl.next("Boot!", func(m *codec.Msg) bool {
		return m.GetBody().GetRequest().GetNotify().GetEvent().GetEventName() == "Boot!"
	})
	if id := ctrl.get("Device.LocalAgent.EndpointID"); id != agentID {
		t.Errorf("EndpointID %q", id)
	}
}
