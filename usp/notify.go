package usp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"paradrop/chute"
	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// maxOutbox bounds the notifications waiting to be sent; beyond, the
// newest are dropped (and logged): the gateway never waits on the broker.
const maxOutbox = 256

// Retries of a notification the broker did not take or the controller did
// not answer (NotifRetry): TR-369's NotifRetryMinimumWaitInterval (5 s)
// doubling, maxTries times in all. The broker's absence is no try: a
// notification raised meanwhile is held (maxPending at most, then lost)
// and sent once it is back.
const (
	maxTries   = 5
	maxPending = 256
)

// outgoing is a notification for a controller, by endpoint ID.
type outgoing struct {
	to   string
	msg  *codec.Msg
	seq  uint64 // the order it was raised in
	sent func() // called once the broker has it; nil: nothing to do
}

// notify queues n for the controller to; a subscription of to of type typ
// on path, if any, gives it its ID and whether it asks a NotifyResp.
func (a *Agent) notify(to, typ, path string, n *codec.Notify) {
	if s := a.subs.matching(to, typ, path); s != nil {
		n.SubscriptionId, n.SendResp = s.id, s.retry
	}
	a.queue(to, n)
}

func (a *Agent) queue(to string, n *codec.Notify) { a.queueThen(to, n, nil) }

// queueThen queues n for to; sent, if not nil, is called once the broker
// has taken it.
func (a *Agent) queueThen(to string, n *codec.Notify, sent func()) {
	seq := a.notifyID.Add(1)
	id := fmt.Sprintf("notify-%s-%d", a.boot, seq)
	msg := &codec.Msg{Header: &codec.Header{MsgId: id, MsgType: codec.Header_NOTIFY},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{Notify: n}}}}}
	select {
	case a.outbox <- outgoing{to: to, msg: msg, seq: seq, sent: sent}:
	default:
		a.cfg.Logf("usp: notification to %s dropped: %d waiting", to, maxOutbox)
	}
}

// waiting is a notification to send again.
type waiting struct {
	o     outgoing
	tries int
	next  time.Time
	held  bool // in pending since before its last send: gone from it means answered
}

// pending are the notifications to send again: not sent yet, or sent
// with send_resp and not answered, by controller and message ID.
type pending struct {
	mu sync.Mutex
	m  map[string]*waiting
}

func newPending() *pending { return &pending{m: map[string]*waiting{}} }

func pendingKey(to, id string) string { return to + "\x00" + id }

// ack drops the notification a NotifyResp answers.
func (p *pending) ack(from, id string) {
	p.mu.Lock()
	delete(p.m, pendingKey(from, id))
	p.mu.Unlock()
}

// trying records that w is about to be sent and says whether to send it.
// One asking a NotifyResp is held from before it is sent, so that an
// answer that comes before the send returns (the broker may deliver it and
// the controller answer before the broker's PUBACK reaches us) finds and
// drops it; one held before and gone was answered meanwhile: not sent.
func (p *pending) trying(w *waiting) bool {
	key := pendingKey(w.o.to, w.o.msg.Header.MsgId)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, in := p.m[key]
	switch {
	case w.held:
		return in
	case w.o.msg.GetBody().GetRequest().GetNotify().GetSendResp() && len(p.m) < maxPending:
		w.next, w.held = time.Now().Add(time.Hour), true // sent() sets when
		p.m[key] = w
	}
	return true
}

// due takes the notifications to send again now, in the order they were
// raised.
func (p *pending) due(now time.Time) []*waiting {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*waiting
	for _, w := range p.m {
		if !now.Before(w.next) {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b *waiting) int { return cmp.Compare(a.o.seq, b.o.seq) })
	return out
}

// away keeps w, which could not be sent because the broker is away, to be
// sent once it is back: the broker's absence spends none of its tries. It
// returns false when maxPending wait already: w is lost.
func (p *pending) away(w *waiting) bool {
	key := pendingKey(w.o.to, w.o.msg.Header.MsgId)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, in := p.m[key]; !in && len(p.m) >= maxPending {
		return false
	}
	w.next, w.held = time.Time{}, true
	p.m[key] = w
	return true
}

// sent records that w was tried: it stays (to be tried again, after
// retry*2^tries) if it failed or awaits an answer, and tries are left.
func (p *pending) sent(w *waiting, failed bool, retry time.Duration) bool {
	key := pendingKey(w.o.to, w.o.msg.Header.MsgId)
	p.mu.Lock()
	defer p.mu.Unlock()
	w.tries++
	_, in := p.m[key]
	if w.held && !in {
		return false // answered while being sent: never again
	}
	wantsResp := w.o.msg.GetBody().GetRequest().GetNotify().GetSendResp()
	if (!failed && !wantsResp) || w.tries >= maxTries {
		delete(p.m, key)
		return failed
	}
	if !in && len(p.m) >= maxPending {
		return true
	}
	w.next, w.held = time.Now().Add(retry<<(w.tries-1)), true
	p.m[key] = w
	return false
}

// send publishes the notifications queued until ctx ends, each to its
// controller's topic, and sends again those due.
func (a *Agent) send(ctx context.Context, c *mqttmtp.Client) {
	tick := time.NewTicker(a.cfg.NotifyRetry / 5)
	defer tick.Stop()
	try := func(w *waiting) {
		if !a.pending.trying(w) {
			return
		}
		rec, err := codec.Wrap(w.o.msg, a.cfg.EndpointID, w.o.to)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = c.Publish(pctx, a.cfg.Controllers[w.o.to].Topic, rec)
			cancel()
		}
		if errors.Is(err, mqttmtp.ErrNotConnected) {
			if !a.pending.away(w) {
				a.cfg.Logf("usp: notification %s to %s lost: the broker is away and %d wait", w.o.msg.Header.MsgId, w.o.to, maxPending)
			}
			return
		}
		if err == nil && w.o.sent != nil {
			w.o.sent()
			w.o.sent = nil
		}
		if a.pending.sent(w, err != nil, a.cfg.NotifyRetry) {
			a.cfg.Logf("usp: notification %s to %s given up: %v", w.o.msg.Header.MsgId, w.o.to, err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-a.outbox:
			// Those held while the broker was away go first.
			for _, w := range a.pending.due(time.Now()) {
				try(w)
			}
			try(&waiting{o: o})
		case now := <-tick.C:
			for _, w := range a.pending.due(now) {
				try(w)
			}
		}
	}
}

// event is an event of the supported data model, with its arguments.
type event struct {
	obj  *object
	name string
	args []string
}

var events = []event{
	{obj: device, name: "Boot!", args: []string{"CommandKey", "Cause", "FirmwareUpdated", "ParameterMap"}},
	{obj: softwareModules, name: "DUStateChange!", args: []string{"UUID", "DeploymentUnitRef", "Version", "CurrentState",
		"Resolved", "ExecutionUnitRefList", "StartTime", "CompleteTime", "OperationPerformed", "Fault.FaultCode", "Fault.FaultString"}},
}

// notifyBoot tells every controller the agent has started (Device.Boot!).
func (a *Agent) notifyBoot() {
	for _, id := range slices.Sorted(maps.Keys(a.cfg.Controllers)) {
		a.notify(id, "Event", "Device.Boot!", &codec.Notify{Notification: &codec.Notify_Event_{Event: &codec.Notify_Event{
			ObjPath: "Device.", EventName: "Boot!",
			Params: map[string]string{"CommandKey": "", "Cause": "LocalReboot", "FirmwareUpdated": "false", "ParameterMap": "{}"},
		}}})
	}
}

// operationComplete tells the controller that ran the async command l how
// it ended; once the notification is handed to the broker, l's record
// goes.
func (a *Agent) operationComplete(l *launch, done savedOutcome) {
	r := l.saved
	oc := &codec.Notify_OperationComplete{ObjPath: r.Obj, CommandName: r.Command, CommandKey: r.Key}
	if done.Code != 0 {
		oc.OperationResp = &codec.Notify_OperationComplete_CmdFailure{CmdFailure: &codec.Notify_OperationComplete_CommandFailure{ErrCode: done.Code, ErrMsg: done.Msg}}
	} else {
		oc.OperationResp = &codec.Notify_OperationComplete_ReqOutputArgs{ReqOutputArgs: &codec.Notify_OperationComplete_OutputArgs{OutputArgs: done.Out}}
	}
	n := &codec.Notify{Notification: &codec.Notify_OperComplete{OperComplete: oc}}
	if s := a.subs.matching(r.From, "OperationComplete", r.Obj+r.Command); s != nil {
		n.SubscriptionId, n.SendResp = s.id, s.retry
	}
	a.queueThen(r.From, n, func() {
		if err := a.state.drop(l.key); err != nil {
			a.cfg.Logf("usp: %v", err)
		}
	})
}

// duOperations name chute changes as DUStateChange!'s OperationPerformed.
var duOperations = map[string]string{"install": "Install", "update": "Update", "remove": "Uninstall"}

// ChangeEnded tells the controllers that may see the chute of an install,
// update or uninstall that ended, whoever asked for it
// (Device.SoftwareModules.DUStateChange!). It does not block: the chute
// manager calls it as the change ends (chute.Manager.OnChangeEnd).
func (a *Agent) ChangeEnded(c chute.Change) {
	a.objectsChanged(c)
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
			a.notify(id, "Event", "Device.SoftwareModules.DUStateChange!", &codec.Notify{Notification: &codec.Notify_Event_{Event: &codec.Notify_Event{
				ObjPath: "Device.SoftwareModules.", EventName: "DUStateChange!", Params: params,
			}}})
		}
	}
}
