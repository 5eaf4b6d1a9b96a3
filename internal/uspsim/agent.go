// Package uspsim simulates gateways' USP agents for the fleet
// controller's tests and benchmark: each answers Get, Add and Operate
// (InstallDU, DeploymentUnit.{i}.Update() and Uninstall()) as TR-369
// says, downloads the package and its signature, and ends each command
// with an OperationComplete notification. It holds no chute: a DU is a
// name and a version read from the package's chute.yaml.
package uspsim

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// Agent is one simulated gateway.
type Agent struct {
	ID, Topic string
	// Controllers are the controllers the agent answers, endpoint ID ->
	// the topic where it sends them its Connect Record and notifications.
	Controllers map[string]string
	Version     string // Device.DeviceInfo.SoftwareVersion
	// FailVersion: installing this version of a chute fails; Hang: no
	// command ever completes.
	FailVersion string
	Hang        bool
	Delay       time.Duration // of an install

	mtp  *mqttmtp.Client
	msgs atomic.Uint64

	mu       sync.Mutex
	dus      map[string]du // by name
	next     int
	installs int
	seen     map[string]bool // msg IDs run, so a re-delivered Operate runs once
	asked    []time.Time     // when each install or update, not a rollback, came
}

type du struct {
	num     int
	version string
}

// DU is the version of a chute the agent runs, "" if none.
func (a *Agent) DU(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dus[name].version
}

// Messages counts the USP records the agent received and sent.
func (a *Agent) Messages() uint64 { return a.msgs.Load() }

// publish sends a record, counting it.
func (a *Agent) publish(ctx context.Context, topic string, rec []byte) {
	if a.mtp.Publish(ctx, topic, rec) == nil {
		a.msgs.Add(1)
	}
}

// Asked returns when each install or forward update came (a rollback is
// an update with X_ParaDrop_Force), in order.
func (a *Agent) Asked() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

// Installs counts the installs and updates the agent ran.
func (a *Agent) Installs() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.installs
}

// Put sets the version of a chute the agent runs, as installed before.
func (a *Agent) Put(name, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.put(name, version)
}

func (a *Agent) put(name, version string) {
	if a.dus == nil {
		a.dus = map[string]du{}
	}
	d, ok := a.dus[name]
	if !ok {
		a.next++
		d.num = a.next
	}
	d.version = version
	a.dus[name] = d
}

// Run connects the agent to the broker until ctx ends.
func (a *Agent) Run(ctx context.Context, broker string) error {
	mtp, err := mqttmtp.New(mqttmtp.Config{Broker: broker, ClientID: a.ID, Topic: a.Topic})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.mtp = mtp
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	a.mu.Unlock()
	return mtp.Run(ctx, a.handle, func(ctx context.Context) {
		for id, topic := range a.Controllers {
			rec, err := codec.ConnectRecord(a.ID, id, a.Topic)
			if err == nil {
				a.publish(ctx, topic, rec)
			}
		}
	})
}

func (a *Agent) handle(ctx context.Context, m mqttmtp.Message) {
	a.msgs.Add(1)
	rec, msg, err := codec.Unwrap(m.Payload, a.ID, 64<<10)
	if err != nil || a.Controllers[rec.FromId] == "" {
		return
	}
	req := msg.GetBody().GetRequest()
	var resp *codec.Response
	typ := codec.Header_ERROR
	switch {
	case req.GetGet() != nil:
		resp, typ = &codec.Response{RespType: &codec.Response_GetResp{GetResp: a.get(req.GetGet())}}, codec.Header_GET_RESP
	case req.GetAdd() != nil:
		var res []*codec.AddResp_CreatedObjectResult
		for _, o := range req.GetAdd().CreateObjs {
			res = append(res, &codec.AddResp_CreatedObjectResult{RequestedPath: o.ObjPath,
				OperStatus: &codec.AddResp_CreatedObjectResult_OperationStatus{OperStatus: &codec.AddResp_CreatedObjectResult_OperationStatus_OperSuccess{
					OperSuccess: &codec.AddResp_CreatedObjectResult_OperationStatus_OperationSuccess{InstantiatedPath: o.ObjPath + "1."}}}})
		}
		resp, typ = &codec.Response{RespType: &codec.Response_AddResp{AddResp: &codec.AddResp{CreatedObjResults: res}}}, codec.Header_ADD_RESP
	case req.GetOperate() != nil:
		resp, typ = &codec.Response{RespType: &codec.Response_OperateResp{OperateResp: a.operate(ctx, rec.FromId, msg.Header.MsgId, req.GetOperate())}}, codec.Header_OPERATE_RESP
	default:
		return
	}
	out, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: msg.Header.MsgId, MsgType: typ},
		Body: &codec.Body{MsgBody: &codec.Body_Response{Response: resp}}}, a.ID, rec.FromId)
	if err == nil {
		a.publish(ctx, m.ReplyTo, out)
	}
}

func (a *Agent) get(g *codec.Get) *codec.GetResp {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out codec.GetResp
	for _, p := range g.ParamPaths {
		r := &codec.GetResp_RequestedPathResult{RequestedPath: p}
		switch p {
		case "Device.DeviceInfo.SoftwareVersion":
			r.ResolvedPathResults = []*codec.GetResp_ResolvedPathResult{{ResolvedPath: "Device.DeviceInfo.",
				ResultParams: map[string]string{"SoftwareVersion": a.Version}}}
		case "Device.SoftwareModules.DeploymentUnit.*.":
			for name, d := range a.dus {
				r.ResolvedPathResults = append(r.ResolvedPathResults, &codec.GetResp_ResolvedPathResult{
					ResolvedPath: fmt.Sprintf("Device.SoftwareModules.DeploymentUnit.%d.", d.num),
					ResultParams: map[string]string{"Name": name, "Version": d.version, "Status": "Installed"}})
			}
		default:
			r.ErrCode, r.ErrMsg = 7026, "not simulated"
		}
		out.ReqPathResults = append(out.ReqPathResults, r)
	}
	return &out
}

// operate answers at once and runs the command, ending it with an
// OperationComplete notification.
func (a *Agent) operate(ctx context.Context, from, msgID string, op *codec.Operate) *codec.OperateResp {
	res := &codec.OperateResp_OperationResult{ExecutedCommand: op.Command}
	fail := func(code uint32, msg string) *codec.OperateResp {
		res.OperationResp = &codec.OperateResp_OperationResult_CmdFailure{CmdFailure: &codec.OperateResp_OperationResult_CommandFailure{ErrCode: code, ErrMsg: msg}}
		return &codec.OperateResp{OperationResults: []*codec.OperateResp_OperationResult{res}}
	}
	var target string // the DU's name, for Update() and Uninstall()
	cmd := op.Command
	if cmd != "Device.SoftwareModules.InstallDU()" {
		num, name, ok := strings.Cut(strings.TrimPrefix(cmd, "Device.SoftwareModules.DeploymentUnit."), ".")
		a.mu.Lock()
		for n, d := range a.dus {
			if strconv.Itoa(d.num) == num {
				target = n
			}
		}
		a.mu.Unlock()
		if !ok || target == "" || (name != "Update()" && name != "Uninstall()") {
			return fail(7026, "no such command")
		}
		cmd = name
	}
	res.OperationResp = &codec.OperateResp_OperationResult_ReqObjPath{ReqObjPath: "Device.LocalAgent.Request.1."}
	a.mu.Lock()
	again := a.seen[from+msgID]
	a.seen[from+msgID] = true
	if !again && cmd != "Uninstall()" && op.InputArgs["X_ParaDrop_Force"] != "true" {
		a.asked = append(a.asked, time.Now())
	}
	a.mu.Unlock()
	if !again {
		go a.run(ctx, from, op, cmd, target)
	}
	return &codec.OperateResp{OperationResults: []*codec.OperateResp_OperationResult{res}}
}

func (a *Agent) run(ctx context.Context, to string, op *codec.Operate, cmd, target string) {
	err := a.install(ctx, cmd, target, op.InputArgs["URL"])
	if errors.Is(err, errHang) {
		return
	}
	oc := &codec.Notify_OperationComplete{ObjPath: "Device.SoftwareModules.", CommandName: op.Command, CommandKey: op.CommandKey}
	if err != nil {
		oc.OperationResp = &codec.Notify_OperationComplete_CmdFailure{CmdFailure: &codec.Notify_OperationComplete_CommandFailure{ErrCode: 7004, ErrMsg: err.Error()}}
	} else {
		oc.OperationResp = &codec.Notify_OperationComplete_ReqOutputArgs{ReqOutputArgs: &codec.Notify_OperationComplete_OutputArgs{}}
	}
	out, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "oc-" + op.CommandKey, MsgType: codec.Header_NOTIFY},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: &codec.Notify{
			SubscriptionId: "paradrop-fleet", Notification: &codec.Notify_OperComplete{OperComplete: oc}}}}}}}, a.ID, to)
	if err == nil {
		a.publish(ctx, a.Controllers[to], out)
	}
}

var errHang = errors.New("hangs")

func (a *Agent) install(ctx context.Context, cmd, target, url string) error {
	if a.Hang {
		return errHang
	}
	if cmd == "Uninstall()" {
		a.mu.Lock()
		delete(a.dus, target)
		a.mu.Unlock()
		return nil
	}
	name, version, err := fetch(ctx, url)
	if err != nil {
		return err
	}
	if target != "" && name != target {
		return fmt.Errorf("package is %s, not %s", name, target)
	}
	if version == a.FailVersion {
		return fmt.Errorf("simulated failure of %s %s", name, version)
	}
	select {
	case <-time.After(a.Delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	a.mu.Lock()
	a.put(name, version)
	a.installs++
	a.mu.Unlock()
	return nil
}

// MaxPackage bounds what a simulated agent downloads.
const MaxPackage = 64 << 20

// fetch downloads a package and its signature and reads the chute's name
// and version in its chute.yaml.
func fetch(ctx context.Context, url string) (name, version string, err error) {
	get := func(u string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, MaxPackage))
	}
	pkg, err := get(url)
	if err != nil {
		return "", "", err
	}
	if sig, err := get(url + ".minisig"); err != nil || len(sig) == 0 {
		return "", "", fmt.Errorf("signature: %v", err)
	}
	var r io.Reader = bytes.NewReader(pkg)
	br := bufio.NewReader(r)
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return "", "", err
		}
		r = gz
	} else {
		r = br
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return "", "", fmt.Errorf("package: no chute.yaml: %v", err)
		}
		if strings.TrimPrefix(h.Name, "./") != "chute.yaml" {
			continue
		}
		var m struct{ Name, Version string }
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err == nil {
			err = yaml.Unmarshal(b, &m)
		}
		if err != nil || m.Name == "" {
			return "", "", fmt.Errorf("package: chute.yaml: %v", err)
		}
		return m.Name, m.Version, nil
	}
}

// Package is a package the simulated agents install: a tar.gz with only
// its chute.yaml.
func Package(name, version string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	y := fmt.Sprintf("name: %s\nversion: %s\ncommand: [/bin/true]\n", name, version)
	tw.WriteHeader(&tar.Header{Name: "chute.yaml", Mode: 0o644, Size: int64(len(y)), Typeflag: tar.TypeReg})
	tw.Write([]byte(y))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}
