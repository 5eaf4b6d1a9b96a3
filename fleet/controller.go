package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"paradrop/usp/codec"
	"paradrop/usp/mqttmtp"
)

// Controller is a USP controller endpoint: it sends requests to agents
// and matches their answers and notifications.
type Controller struct {
	id   string
	mtp  *mqttmtp.Client
	logf func(string, ...any)
	max  int

	seq atomic.Uint64
	tag string // makes message IDs unique across controller processes

	mu       sync.Mutex
	topics   map[string]string // agent endpoint ID -> its topic
	pinned   map[string]bool   // topics given by configuration: a Connect Record does not move them
	pending  map[string]chan *codec.Msg
	complete map[string]chan *codec.Notify_OperationComplete // by command key
	seen     func(agent, topic string, news bool)
	ready    chan struct{}

	msgs atomic.Uint64 // records sent and received
}

// ControllerConfig configures a controller endpoint.
type ControllerConfig struct {
	EndpointID string
	// MTP is the endpoint's MQTT client, whose topic agents answer to.
	MTP *mqttmtp.Client
	// Agents are agents known beforehand, endpoint ID -> topic.
	Agents map[string]string
	// Seen (if not nil) is told of every record an agent sends, with the
	// topic it is reached on; news says the agent (re)connected, booted or
	// changed its software modules: what it runs may have changed.
	Seen func(agent, topic string, news bool)
	Logf func(string, ...any)
}

// ErrUnknownAgent: a request to an agent whose topic is not known.
var ErrUnknownAgent = errors.New("fleet: agent's topic unknown")

// USPError is an Error message an agent answered, or a failed command.
type USPError struct {
	Code uint32
	Msg  string
}

func (e *USPError) Error() string { return fmt.Sprintf("usp error %d: %s", e.Code, e.Msg) }

// NewController makes a controller; Run serves it.
func NewController(cfg ControllerConfig) *Controller {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	c := &Controller{id: cfg.EndpointID, mtp: cfg.MTP, logf: cfg.Logf, max: 1 << 20, tag: rand.Text()[:8],
		topics: map[string]string{}, pinned: map[string]bool{}, pending: map[string]chan *codec.Msg{},
		complete: map[string]chan *codec.Notify_OperationComplete{}, seen: cfg.Seen, ready: make(chan struct{})}
	for id, t := range cfg.Agents {
		c.topics[id], c.pinned[id] = t, true
	}
	return c
}

// EndpointID is the controller's endpoint ID.
func (c *Controller) EndpointID() string { return c.id }

// Messages counts the USP records sent and received so far.
func (c *Controller) Messages() uint64 { return c.msgs.Load() }

// Learn records where an agent is reached (from the stored state),
// unless configuration pinned it.
func (c *Controller) Learn(agent, topic string) {
	if mqttmtp.CheckTopic(topic) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pinned[agent] {
		c.topics[agent] = topic
	}
}

// Agents are the agents whose topic is known.
func (c *Controller) Agents() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.topics))
	for k, v := range c.topics {
		out[k] = v
	}
	return out
}

// Run handles what agents send until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	var once sync.Once
	return c.mtp.Run(ctx, func(ctx context.Context, m mqttmtp.Message) { c.handle(ctx, m) },
		func(context.Context) { once.Do(func() { close(c.ready) }) })
}

// Ready is closed once the controller is first connected and subscribed.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

func (c *Controller) handle(ctx context.Context, m mqttmtp.Message) {
	c.msgs.Add(1)
	rec, msg, err := codec.Unwrap(m.Payload, c.id, c.max)
	if rec == nil || rec.FromId == "" || errors.Is(err, codec.ErrNotForUs) {
		return
	}
	if mc := rec.GetMqttConnect(); mc != nil {
		// R-MTP.6: the agent names the topic it listens on.
		c.Learn(rec.FromId, mc.SubscribedTopic)
		c.tellSeen(rec.FromId, true)
		return
	}
	if err != nil {
		return
	}
	n := msg.GetBody().GetRequest().GetNotify()
	c.tellSeen(rec.FromId, newsEvents[n.GetEvent().GetEventName()])
	if n != nil {
		c.notify(ctx, rec.FromId, m.ReplyTo, msg, n)
		return
	}
	c.mu.Lock()
	ch, ok := c.pending[msg.GetHeader().GetMsgId()]
	delete(c.pending, msg.GetHeader().GetMsgId())
	c.mu.Unlock()
	if ok {
		ch <- msg
	}
}

// newsEvents are the events after which an agent runs something else
// (TR-181's Device.Boot! and Device.SoftwareModules.DUStateChange!).
var newsEvents = map[string]bool{"Boot!": true, "DUStateChange!": true}

func (c *Controller) tellSeen(agent string, news bool) {
	c.mu.Lock()
	topic := c.topics[agent]
	c.mu.Unlock()
	if c.seen != nil {
		c.seen(agent, topic, news)
	}
}

// notify takes a notification: an OperationComplete goes to who waits
// for its command key; it is answered if the agent asks (R-NOT.3).
func (c *Controller) notify(ctx context.Context, agent, replyTo string, msg *codec.Msg, n *codec.Notify) {
	if oc := n.GetOperComplete(); oc != nil {
		c.mu.Lock()
		ch, ok := c.complete[agent+"\x00"+oc.CommandKey]
		c.mu.Unlock()
		if ok {
			select {
			case ch <- oc:
			default:
			}
		}
	}
	if !n.SendResp {
		return
	}
	out, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: msg.Header.MsgId, MsgType: codec.Header_NOTIFY_RESP},
		Body: &codec.Body{MsgBody: &codec.Body_Response{Response: &codec.Response{RespType: &codec.Response_NotifyResp{
			NotifyResp: &codec.NotifyResp{SubscriptionId: n.SubscriptionId}}}}}}, c.id, agent)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.mtp.Publish(ctx, replyTo, out); err != nil {
		c.logf("fleet: notify response to %s: %v", agent, err)
	} else {
		c.msgs.Add(1)
	}
}

// Request sends req to an agent and waits for its answer: the response,
// or a *USPError for an Error message.
func (c *Controller) Request(ctx context.Context, agent string, typ codec.Header_MsgType, req *codec.Request) (*codec.Response, error) {
	c.mu.Lock()
	topic, ok := c.topics[agent]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAgent, agent)
	}
	id := fmt.Sprintf("%s-%s-%d", typ, c.tag, c.seq.Add(1))
	out, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: id, MsgType: typ},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: req}}}, c.id, agent)
	if err != nil {
		return nil, err
	}
	ch := make(chan *codec.Msg, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	// While the broker is away, wait for it (within ctx): a controller
	// starting or a broker restarting fails no gateway. A request
	// unanswered is sent again under the same message ID: the agent was
	// perhaps away (the broker keeps nothing for it), and runs an
	// Operate it already ran only once (R-MSG.2).
	for resend := time.NewTimer(0); ; {
		select {
		case <-resend.C:
			err := c.mtp.Publish(ctx, topic, out)
			switch {
			case err == nil:
				c.msgs.Add(1)
				resend.Reset(resendAfter)
			case errors.Is(err, mqttmtp.ErrNotConnected):
				resend.Reset(200 * time.Millisecond)
			default:
				return nil, err
			}
		case msg := <-ch:
			if e := msg.GetBody().GetError(); e != nil {
				return nil, &USPError{e.ErrCode, e.ErrMsg}
			}
			if r := msg.GetBody().GetResponse(); r != nil {
				return r, nil
			}
			return nil, fmt.Errorf("fleet: %s answered %s with neither a response nor an error", agent, typ)
		case <-ctx.Done():
			return nil, fmt.Errorf("fleet: %s: no answer to %s: %w", agent, typ, ctx.Err())
		}
	}
}

// resendAfter is how long a request waits for its answer before it is
// sent again.
const resendAfter = 5 * time.Second

// Operate runs an asynchronous command on an agent and waits for its
// OperationComplete notification: its output arguments, or a *USPError
// for a failed command.
func (c *Controller) Operate(ctx context.Context, agent, command string, input map[string]string) (map[string]string, error) {
	key := fmt.Sprintf("%s-%s-%d", c.id, c.tag, c.seq.Add(1))
	done := make(chan *codec.Notify_OperationComplete, 1)
	c.mu.Lock()
	c.complete[agent+"\x00"+key] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.complete, agent+"\x00"+key)
		c.mu.Unlock()
	}()
	resp, err := c.Request(ctx, agent, codec.Header_OPERATE, &codec.Request{ReqType: &codec.Request_Operate{Operate: &codec.Operate{
		Command: command, CommandKey: key, SendResp: true, InputArgs: input,
	}}})
	if err != nil {
		return nil, err
	}
	var res *codec.OperateResp_OperationResult
	for _, r := range resp.GetOperateResp().GetOperationResults() {
		res = r
	}
	switch {
	case res == nil:
		return nil, fmt.Errorf("fleet: %s: %s: no operation result", agent, command)
	case res.GetCmdFailure() != nil:
		return nil, &USPError{res.GetCmdFailure().ErrCode, res.GetCmdFailure().ErrMsg}
	case res.GetReqOutputArgs() != nil:
		return res.GetReqOutputArgs().OutputArgs, nil // it ran at once
	}
	select {
	case oc := <-done:
		if f := oc.GetCmdFailure(); f != nil {
			return nil, &USPError{f.ErrCode, f.ErrMsg}
		}
		return oc.GetReqOutputArgs().GetOutputArgs(), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("fleet: %s: %s did not complete: %w", agent, command, ctx.Err())
	}
}
