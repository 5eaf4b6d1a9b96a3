// Package usp is the gateway's TR-369 (User Services Platform) agent: a
// second front door beside api/, mapping TR-181's data model
// (Device.DeviceInfo, Device.LocalAgent, Device.SoftwareModules) onto the
// chute manager. It answers the USP controllers it is configured to trust,
// over any transport; usp/mqttmtp carries it over MQTT and usp/codec is
// the wire format.
package usp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"paradrop/chute"
	"paradrop/store"
	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// Chutes is what the agent reads and asks of the chute manager.
type Chutes interface {
	List() []chute.Info
	Install(ctx context.Context, pkg io.Reader, o chute.Origin) (chute.Change, error)
	Update(ctx context.Context, name string, pkg io.Reader, force bool, o chute.Origin) (chute.Change, error)
	Remove(name string, keepData bool, actor chute.Actor) (chute.Change, error)
	Start(name string, actor chute.Actor) (chute.Change, error)
	Stop(name string, actor chute.Actor) (chute.Change, error)
	Restart(name string, actor chute.Actor) (chute.Change, error)
	WaitChange(ctx context.Context, id uint64) (chute.Change, error)
}

// DeviceInfo is Device.DeviceInfo.
type DeviceInfo struct {
	Manufacturer, ModelName, SerialNumber, SoftwareVersion string
	UpTime                                                 func() time.Duration
}

// Use is what a chute uses, in bytes.
type Use struct {
	Memory, Disk uint64
}

// Config configures an agent.
type Config struct {
	// EndpointID is the agent's USP endpoint ID (TR-369 "Endpoint
	// Identifier").
	EndpointID string
	// Controllers are the controllers the agent answers, by endpoint ID.
	Controllers map[string]Controller
	Device      DeviceInfo
	Chutes      Chutes
	// Origin is the terms a package from a developer ("" the operator)
	// is installed on (tenant.Origin): the API's, so that a download is
	// checked as an upload is. Nil refuses installs and updates.
	Origin func(developer string, actor chute.Actor) (chute.Origin, error)
	// Available is the memory and disk space left to chutes, in KiB, for
	// ExecEnv; nil: unknown (0).
	Available func() (memory, disk uint64)
	// InUse is what each chute uses now, by name; nil: unknown (0).
	InUse func() map[string]Use
	// Hosts are the LAN devices the gateway sees, for Device.Hosts (the
	// operator's controller only); nil: none.
	Hosts func() []chute.Host
	// Download bounds the fetch of a package: its size (default 256 MiB)
	// and time (default 10 minutes).
	Download Download
	// Poll is how often ValueChange subscriptions are looked at (default
	// 1 s); NotifyRetry the first wait before a notification is sent
	// again (default 5 s, doubling).
	Poll, NotifyRetry time.Duration
	// MaxRecord bounds a record received (default 64 KiB); MaxResponse
	// the answer built (default 1 MiB).
	MaxRecord, MaxResponse int
	// DB keeps what the agent must not forget in a restart (state.go);
	// nil: nothing is kept.
	DB   *store.DB
	Logf func(format string, args ...any)
}

// Agent answers USP records.
type Agent struct {
	cfg  Config
	mu   sync.Mutex
	nums map[string]uint32 // instance numbers of the chutes' DU and EU
	next uint32
	urls map[string]string // the URL each chute was installed from, by the agent

	// ctx ends the agent's operations; wg waits for them.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	seen     *recent     // answers to the requests that changed something (recent.go)
	ops      *operations // the async commands running (request.go)
	subs     *subscriptions
	pending  *pending      // notifications waiting for their NotifyResp (notify.go)
	outbox   chan outgoing // notifications waiting to be sent (notify.go)
	notifyID atomic.Uint64
	boot     string // names this run in notification message IDs
	booted   atomic.Bool

	state *state
	// since is when the agent was made: a change the chute manager ended
	// before was not told to ChangeEnded. leftover are the commands a
	// previous run left, by store key (recover.go).
	since    time.Time
	leftover map[string]savedRequest
	hostNums hostNumbers // Device.Hosts.Host instance numbers (hosts.go)
}

// endpointID is TR-369's Endpoint ID: authority-scheme::instance-id, of
// the allowed characters, at most 64 of them.
var endpointID = regexp.MustCompile(`^[a-z]+:[A-Za-z0-9._%-]*:[A-Za-z0-9._%:-]+$`)

// CheckEndpointID says whether id is a valid USP endpoint ID.
func CheckEndpointID(id string) error {
	if len(id) > 64 || !endpointID.MatchString(id) {
		return fmt.Errorf("endpoint ID %q: want SCHEME:AUTHORITY:ID of letters, digits and . _ %% - :, at most 64", id)
	}
	return nil
}

// New checks cfg and makes an agent.
func New(cfg Config) (*Agent, error) {
	if err := CheckEndpointID(cfg.EndpointID); err != nil {
		return nil, err
	}
	for id := range cfg.Controllers {
		if err := CheckEndpointID(id); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	if cfg.Chutes == nil {
		return nil, errors.New("usp: no chute manager")
	}
	if cfg.MaxRecord <= 0 {
		cfg.MaxRecord = 64 << 10
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = 1 << 20
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	cfg.Download = cfg.Download.withDefaults()
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.NotifyRetry <= 0 {
		cfg.NotifyRetry = 5 * time.Second
	}
	st := newState(cfg.DB)
	ctx, stop := context.WithCancel(context.Background())
	a := &Agent{cfg: cfg, nums: map[string]uint32{}, urls: map[string]string{}, ctx: ctx, stop: stop,
		seen: newRecent(maxRecent), ops: newOperations(maxOperations), subs: newSubscriptions(st, cfg.Logf), pending: newPending(),
		outbox: make(chan outgoing, maxOutbox), boot: rand.Text()[:8], state: st, since: time.Now()}
	answers, requests, err := a.state.load()
	if err == nil {
		err = a.subs.restore(cfg.Controllers)
	}
	var nums savedNumbers
	if err == nil {
		nums, err = a.state.numbers()
	}
	if err != nil {
		stop()
		return nil, err
	}
	if nums.Nums != nil {
		a.nums, a.next = nums.Nums, nums.Next
	}
	for _, s := range answers {
		if evicted, ok := a.seen.put(s.Key, s.Answer); ok {
			a.state.drop(a.state.answers[evicted])
		}
	}
	a.leftover = requests
	return a, nil
}

// Handle answers one record: the record to send back, or nil when it
// gets no answer (not for us, not a request, unreadable).
func (a *Agent) Handle(data []byte) []byte {
	rec, msg, err := codec.Unwrap(data, a.cfg.EndpointID, a.cfg.MaxRecord)
	var rerr *codec.RecordError
	switch {
	case rec == nil || CheckEndpointID(rec.FromId) != nil:
		return nil // no valid sender to answer (R-MTP.5)
	case err == nil:
	case errors.As(err, &rerr) && msg != nil && msg.GetBody().GetRequest() != nil:
		// R-MTP.5: an erroneous record whose request we can read.
		return a.answer(rec, msg, errorMsg(rerr.Code, rerr.Reason))
	default:
		return nil
	}
	ctl, trusted := a.cfg.Controllers[rec.FromId]
	req := msg.GetBody().GetRequest()
	if req == nil {
		// A response: a NotifyResp ends a notification's retries.
		if nr := msg.GetBody().GetResponse().GetNotifyResp(); nr != nil && trusted {
			a.pending.ack(rec.FromId, msg.Header.MsgId)
		}
		return nil
	}
	if !trusted {
		a.cfg.Logf("usp: request from %q, not a configured controller, refused", rec.FromId)
		return a.answer(rec, msg, errorMsg(codePermission, "not a controller of this agent"))
	}
	var body func() *codec.Body
	var launches []*launch
	switch r := req.ReqType.(type) {
	case *codec.Request_Operate:
		body = func() *codec.Body { return a.operate(rec.FromId, ctl, r.Operate, &launches) }
	case *codec.Request_Add:
		body = func() *codec.Body { return a.add(rec.FromId, r.Add) }
	case *codec.Request_Set:
		body = func() *codec.Body { return a.set(rec.FromId, ctl, r.Set) }
	case *codec.Request_Delete:
		body = func() *codec.Body { return a.remove(rec.FromId, ctl, r.Delete) }
	default:
		return a.answer(rec, msg, a.dispatch(rec.FromId, ctl, req))
	}
	// A request that changes something, delivered again (MQTT's QoS 1
	// may), runs once, even across a restart of the gateway: the same
	// controller's same message ID gets the first answer again.
	key := rec.FromId + "\x00" + msg.Header.MsgId
	if out, ok := a.seen.get(key); ok {
		a.cfg.Logf("usp: message %q from %s again: not run twice", msg.Header.MsgId, rec.FromId)
		return out
	}
	out := a.answer(rec, msg, body())
	if op := req.GetOperate(); op != nil && !op.SendResp {
		out = nil
	}
	evicted, _ := a.seen.put(key, out)
	if err := a.state.commit(key, out, evicted, launches); err != nil {
		a.cfg.Logf("usp: %v: the answer and commands will not outlive a restart", err)
	}
	for _, l := range launches {
		a.wg.Go(l.run)
	}
	return out
}

// dispatch runs a request from a trusted controller.
func (a *Agent) dispatch(from string, ctl Controller, req *codec.Request) *codec.Body {
	b := budget(a.cfg.MaxResponse)
	var resp *codec.Response
	var err error
	switch r := req.ReqType.(type) {
	case *codec.Request_Get:
		var gr *codec.GetResp
		if gr, err = get(r.Get, a.snapshot(from, ctl), &b); err == nil {
			resp = &codec.Response{RespType: &codec.Response_GetResp{GetResp: gr}}
		}
	case *codec.Request_GetSupportedDm:
		var gr *codec.GetSupportedDMResp
		if gr, err = getSupportedDM(r.GetSupportedDm, a.snapshot(from, ctl), &b); err == nil {
			resp = &codec.Response{RespType: &codec.Response_GetSupportedDmResp{GetSupportedDmResp: gr}}
		}
	case *codec.Request_GetInstances:
		var gr *codec.GetInstancesResp
		if gr, err = getInstances(r.GetInstances, a.snapshot(from, ctl), &b); err == nil {
			resp = &codec.Response{RespType: &codec.Response_GetInstancesResp{GetInstancesResp: gr}}
		}
	case *codec.Request_GetSupportedProtocol:
		resp = &codec.Response{RespType: &codec.Response_GetSupportedProtocolResp{GetSupportedProtocolResp: &codec.GetSupportedProtocolResp{
			AgentSupportedProtocolVersions: strings.Join(codec.Versions, ","),
		}}}
	default:
		return errorMsg(codeNotSupported, "this agent does not support the message yet")
	}
	switch {
	case errors.Is(err, errResources):
		return errorMsg(codeResources, fmt.Sprintf("%v (%d bytes)", err, a.cfg.MaxResponse))
	case err != nil:
		return errorMsg(codeInternal, err.Error())
	}
	return &codec.Body{MsgBody: &codec.Body_Response{Response: resp}}
}

func errorMsg(code uint32, msg string) *codec.Body {
	return &codec.Body{MsgBody: &codec.Body_Error{Error: &codec.Error{ErrCode: code, ErrMsg: msg}}}
}

// respType is the header type of the answer to a body.
func respType(b *codec.Body) codec.Header_MsgType {
	switch b.GetResponse().GetRespType().(type) {
	case *codec.Response_GetResp:
		return codec.Header_GET_RESP
	case *codec.Response_GetSupportedDmResp:
		return codec.Header_GET_SUPPORTED_DM_RESP
	case *codec.Response_GetSupportedProtocolResp:
		return codec.Header_GET_SUPPORTED_PROTO_RESP
	case *codec.Response_GetInstancesResp:
		return codec.Header_GET_INSTANCES_RESP
	case *codec.Response_OperateResp:
		return codec.Header_OPERATE_RESP
	case *codec.Response_AddResp:
		return codec.Header_ADD_RESP
	case *codec.Response_SetResp:
		return codec.Header_SET_RESP
	case *codec.Response_DeleteResp:
		return codec.Header_DELETE_RESP
	}
	return codec.Header_ERROR
}

// answer wraps the answer to msg, under its message ID (R-MSG.9).
func (a *Agent) answer(rec *codec.Record, msg *codec.Msg, body *codec.Body) []byte {
	out := &codec.Msg{Header: &codec.Header{MsgId: msg.Header.MsgId, MsgType: respType(body)}, Body: body}
	b, err := codec.Wrap(out, a.cfg.EndpointID, rec.FromId)
	if err != nil {
		a.cfg.Logf("usp: %v", err)
		return nil
	}
	return b
}

// Serve answers the records c receives until ctx ends, and sends the
// notifications. Once connected it sends each controller a Connect Record
// on its topic (R-MTP.6), and Device.Boot! after the first connection.
// The operations still running are cancelled when it returns.
func (a *Agent) Serve(ctx context.Context, c *mqttmtp.Client) error {
	defer a.wg.Wait()
	defer a.stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.wg.Go(func() { a.send(ctx, c) })
	a.wg.Go(func() { a.watch(ctx) })
	a.wg.Go(func() { a.recover(ctx) })
	connected := func(ctx context.Context) {
		for id, ctl := range a.cfg.Controllers {
			rec, err := codec.ConnectRecord(a.cfg.EndpointID, id, c.Topic())
			if err == nil {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = c.Publish(ctx, ctl.Topic, rec)
				cancel()
			}
			if err != nil {
				a.cfg.Logf("usp: connect record to %s: %v", id, err)
			}
		}
		if !a.booted.Swap(true) {
			a.notifyBoot()
		}
	}
	return c.Run(ctx, func(ctx context.Context, m mqttmtp.Message) {
		out := a.Handle(m.Payload)
		if out == nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Publish(ctx, m.ReplyTo, out); err != nil {
			a.cfg.Logf("usp: answer: %v", err)
		}
	}, connected)
}
