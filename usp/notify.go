package usp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"paradrop/chute"
	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// maxOutbox bounds the notifications waiting to be sent; beyond, the
// newest are dropped (and logged): the gateway never waits on the broker.
const maxOutbox = 256

// notifyRetry is how long a notification waits for the broker to be back.
const notifyRetry = time.Minute

// outgoing is a notification for a controller, by endpoint ID.
type outgoing struct {
	to  string
	msg *codec.Msg
}

// notify queues n for the controller to.
func (a *Agent) notify(to string, n *codec.Notify) {
	id := fmt.Sprintf("notify-%s-%d", a.boot, a.notifyID.Add(1))
	msg := &codec.Msg{Header: &codec.Header{MsgId: id, MsgType: codec.Header_NOTIFY},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: n}}}}}
	select {
	case a.outbox <- outgoing{to: to, msg: msg}:
	default:
		a.cfg.Logf("usp: notification to %s dropped: %d waiting", to, maxOutbox)
	}
}

// send publishes the notifications queued until ctx ends, each to its
// controller's topic, waiting up to notifyRetry for a lost broker.
func (a *Agent) send(ctx context.Context, c *mqttmtp.Client) {
	for {
		var o outgoing
		select {
		case <-ctx.Done():
			return
		case o = <-a.outbox:
		}
		rec, err := codec.Wrap(o.msg, a.cfg.EndpointID, o.to)
		if err != nil {
			a.cfg.Logf("usp: notification to %s: %v", o.to, err)
			continue
		}
		deadline := time.Now().Add(notifyRetry)
		for {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = c.Publish(pctx, a.cfg.Controllers[o.to].Topic, rec)
			cancel()
			if !errors.Is(err, mqttmtp.ErrNotConnected) || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			a.cfg.Logf("usp: notification to %s: %v", o.to, err)
		}
	}
}

// notifyBoot tells every controller the agent has started (Device.Boot!).
func (a *Agent) notifyBoot() {
	for _, id := range slices.Sorted(maps.Keys(a.cfg.Controllers)) {
		a.notify(id, &codec.Notify{Notification: &codec.Notify_Event_{Event: &codec.Notify_Event{
			ObjPath: "Device.", EventName: "Boot!",
			Params: map[string]string{"CommandKey": "", "Cause": "LocalReboot", "FirmwareUpdated": "false", "ParameterMap": "{}"},
		}}})
	}
}

// operationComplete tells the controller from how its async command on
// obj ended.
func (a *Agent) operationComplete(from, obj, command, key string, out map[string]string, err error) {
	oc := &codec.Notify_OperationComplete{ObjPath: obj, CommandName: command, CommandKey: key}
	if err != nil {
		code, msg := commandError(err)
		oc.OperationResp = &codec.Notify_OperationComplete_CmdFailure{CmdFailure: &codec.Notify_OperationComplete_CommandFailure{ErrCode: code, ErrMsg: msg}}
	} else {
		oc.OperationResp = &codec.Notify_OperationComplete_ReqOutputArgs{ReqOutputArgs: &codec.Notify_OperationComplete_OutputArgs{OutputArgs: out}}
	}
	a.notify(from, &codec.Notify{Notification: &codec.Notify_OperComplete{OperComplete: oc}})
}

// duOperations name chute changes as DUStateChange!'s OperationPerformed.
var duOperations = map[string]string{"install": "Install", "update": "Update", "remove": "Uninstall"}

// ChangeEnded tells the controllers that may see the chute of an install,
// update or uninstall that ended, whoever asked for it
// (Device.SoftwareModules.DUStateChange!). It does not block: the chute
// manager calls it as the change ends (chute.Manager.OnChangeEnd).
func (a *Agent) ChangeEnded(c chute.Change) {
	op, ok := duOperations[c.Action]
	if !ok {
		return
	}
	var fault error
	if c.State == chute.ChangeError {
		fault = errors.New(c.Error)
	}
	end := time.Now().UTC()
	if c.Ended != nil {
		end = *c.Ended
	}
	a.duStateChange(c.Chute, c.Owner, op, c.Created, end, fault)
}

// duStateChange sends DUStateChange! about chute name of owner.
func (a *Agent) duStateChange(name string, owner chute.Owner, op string, start, end time.Time, fault error) {
	params := map[string]string{
		"OperationPerformed": op, "StartTime": start.UTC().Format(time.RFC3339),
		"CompleteTime": end.UTC().Format(time.RFC3339), "Fault.FaultCode": "0", "Fault.FaultString": "",
		"DeploymentUnitRef": "", "ExecutionUnitRefList": "", "Version": "", "Resolved": "false",
	}
	if name != "" {
		params["UUID"] = uuid.NewSHA1(duNamespace, []byte(name)).String()
	}
	var info *chute.Info
	for _, c := range a.cfg.Chutes.List() {
		if c.Name == name {
			info = &c
		}
	}
	switch {
	case info != nil:
		n := strconv.FormatUint(uint64(a.number(name)), 10)
		params["DeploymentUnitRef"] = "Device.SoftwareModules.DeploymentUnit." + n
		params["ExecutionUnitRefList"] = "Device.SoftwareModules.ExecutionUnit." + n
		params["Version"], params["Resolved"], params["CurrentState"] = info.Version, "true", "Installed"
	case op == "Install":
		params["CurrentState"] = "Failed"
	default:
		params["CurrentState"] = "Uninstalled"
	}
	if fault != nil {
		code, msg := commandError(fault)
		params["Fault.FaultCode"], params["Fault.FaultString"] = strconv.FormatUint(uint64(code), 10), msg
	}
	for _, id := range slices.Sorted(maps.Keys(a.cfg.Controllers)) {
		if a.cfg.Controllers[id].sees(owner) {
			a.notify(id, &codec.Notify{Notification: &codec.Notify_Event_{Event: &codec.Notify_Event{
				ObjPath: "Device.SoftwareModules.", EventName: "DUStateChange!", Params: params,
			}}})
		}
	}
}
