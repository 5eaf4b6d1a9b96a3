// Package controller owns the OpenFlow 1.3 session with the gateway's Open
// vSwitch bridge and keeps the switch's flows and meters equal to a desired
// set.
//
// The network layer describes every flow and meter the bridge should hold
// with SetDesired; the controller converges the switch to that set
// (reconciles) whenever it changes, whenever the switch (re)connects, and
// every ReconcileInterval, so flows lost to a vswitchd restart or deleted
// by hand come back and flows added by someone else go away. A reconcile
// reads the switch's flows and meters, sends only the differences, and is
// confirmed by a BARRIER; Sync runs one and reports what the switch refused
// as *OFError values.
//
// Work is not done twice: the reconcile SetDesired triggers waits a few
// milliseconds (so that a caller's Sync right after takes the switch first)
// and is skipped if a reconcile on the same switch connection has, since
// the trigger, been confirmed for that desired set or a newer one. Sync
// always runs a reconcile of its own, reading the switch back after it was
// called, and concurrent Syncs never share one; periodic reconciles and
// those of a new connection always run in full.
//
// The controller listens for the switch (OVS connects to us and reconnects
// by itself); it serves one switch connection at a time, a newer
// connection replacing an older one.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"paradrop/sdn/ofp"
)

// Flow is one flow entry the switch should hold. Flows are identified by
// (Table, Priority, Match), as in OpenFlow; Cookie and Instructions are
// their content.
type Flow struct {
	Table    uint8
	Priority uint16
	// Cookie tags the flow's owner: the network layer puts a per-chute
	// id in the high 32 bits, so FlowStats can select one chute's flows.
	Cookie       uint64
	Match        ofp.Match
	Instructions []ofp.Instruction
	// Note describes the flow to operators; it is not sent to the switch.
	Note string
}

// Meter is a meter with a single drop band: traffic above RateKbps is
// dropped; BurstKb allows bursts (0: the switch's default, which for OVS
// is the rate).
type Meter struct {
	ID       uint32
	RateKbps uint32
	BurstKb  uint32
}

// FlowStat is a flow entry as the switch counts it. Flow is the desired
// flow it matched (its table, priority, cookie and Note; the match and
// instructions as the switch reports them), or the switch's own
// description of a flow that is not desired.
type FlowStat struct {
	Flow
	Packets, Bytes uint64
	Duration       time.Duration
}

// Config configures a Controller; zero fields take the defaults.
type Config struct {
	// Listen is the TCP address the switch connects to; default
	// 127.0.0.1:6653.
	Listen string
	// EchoInterval is how often we probe the switch; default 5s.
	EchoInterval time.Duration
	// EchoTimeout is how long a probe may go unanswered before the
	// connection is dropped (and the handshake may take); default 10s.
	// It must cover the switch applying the largest batch, since OVS
	// answers an echo only after the flow_mods queued before it.
	EchoTimeout time.Duration
	// ReconcileInterval is the period of background reconciles; default 30s.
	ReconcileInterval time.Duration
	// Logf logs connection events and reconcile summaries; default log.Printf.
	Logf func(format string, args ...any)
}

// ErrNotConnected wraps the errors of requests whose connection to the
// switch ended before they completed.
var ErrNotConnected = errors.New("controller: switch not connected")

// Controller is the OpenFlow controller of one bridge. Its methods are
// safe for concurrent use.
type Controller struct {
	cfg Config

	lnMu sync.Mutex
	ln   net.Listener

	// kick (from SetDesired) and attached (a new connection) ask the
	// background loop to reconcile; one pending request of each is
	// enough, so they have room for one and senders never block.
	kick, attached chan struct{}

	mu       sync.Mutex
	desired  *desiredSet
	sess     *session      // the ready session, nil when disconnected
	sessCh   chan struct{} // closed (and replaced) when sess changes
	sessions uint64        // sessions attached so far
	dpid     uint64
	ports    map[string]uint32
	packetIn func(*ofp.PacketIn)

	// flowMods and meterMods count what reconciles sent, readBacks the
	// reconciles that read the switch and skipped the triggered ones that
	// found their work confirmed, so tests can check that no work is done
	// twice.
	flowMods, meterMods, readBacks, skipped atomic.Uint64
}

// triggerDelay is how long the reconcile SetDesired triggers waits before
// taking the switch: long enough for a Sync called right after to go
// first, short enough not to matter to a caller that does not Sync. A
// variable so that tests can make the race's outcome certain.
var triggerDelay = 5 * time.Millisecond

// New returns a controller; nothing happens until Listen or Run.
func New(cfg Config) *Controller {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:6653"
	}
	if cfg.EchoInterval <= 0 {
		cfg.EchoInterval = 5 * time.Second
	}
	if cfg.EchoTimeout <= 0 {
		cfg.EchoTimeout = 10 * time.Second
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 30 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	empty, _ := newDesiredSet(nil, nil)
	empty.gen = 1 // 0 is no generation: what a new session has confirmed
	return &Controller{
		cfg:      cfg,
		kick:     make(chan struct{}, 1),
		attached: make(chan struct{}, 1),
		desired:  empty,
		sessCh:   make(chan struct{}),
		ports:    map[string]uint32{},
	}
}

// Listen binds the listening socket, so the caller can point OVS at the
// real address (useful with port 0) before Run. Calling it again returns
// the same address.
func (c *Controller) Listen() (net.Addr, error) {
	c.lnMu.Lock()
	defer c.lnMu.Unlock()
	if c.ln == nil {
		ln, err := net.Listen("tcp", c.cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("controller: listen: %w", err)
		}
		c.ln = ln
	}
	return c.ln.Addr(), nil
}

// Run accepts switch connections and serves them, reconciling in the
// background, until ctx ends; it then closes the listener and the
// connection and returns nil. A Controller runs once.
func (c *Controller) Run(ctx context.Context) error {
	if _, err := c.Listen(); err != nil {
		return err
	}
	c.lnMu.Lock()
	ln := c.ln
	c.lnMu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends the connections
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	wg.Go(func() { c.reconcileLoop(ctx) })
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("controller: accept: %w", err)
		}
		wg.Go(func() { c.serve(ctx, conn) })
	}
}

// serve runs one switch connection until it fails or ctx ends.
func (c *Controller) serve(ctx context.Context, conn net.Conn) {
	s := newSession(c, conn)
	stop := context.AfterFunc(ctx, func() { s.close(ctx.Err()) })
	defer stop()
	peer := conn.RemoteAddr()
	if err := s.handshake(ctx); err != nil {
		s.close(err)
		c.cfg.Logf("controller: switch %s: handshake failed: %v", peer, s.err)
		return
	}
	c.cfg.Logf("controller: switch %s connected, datapath %016x", peer, s.dpid)
	c.attach(s)
	signal(c.attached)
	err := s.keepalive(c.cfg.EchoInterval, c.cfg.EchoTimeout)
	c.detach(s)
	if ctx.Err() == nil {
		c.cfg.Logf("controller: switch %s disconnected: %v", peer, err)
	}
}

// attach makes s the current session, dropping an older connection: OVS
// has only one connection to a controller target, so an older one is dead.
func (c *Controller) attach(s *session) {
	c.mu.Lock()
	old := c.sess
	c.sess = s
	c.sessions++
	c.dpid = s.dpid
	c.ports = s.initialPorts // from now on portStatus updates it as c.ports
	close(c.sessCh)
	c.sessCh = make(chan struct{})
	c.mu.Unlock()
	if old != nil {
		old.close(errors.New("replaced by a newer connection"))
	}
}

func (c *Controller) detach(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		close(c.sessCh)
		c.sessCh = make(chan struct{})
	}
}

// session waits for a ready session.
func (c *Controller) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ch := c.sess, c.sessCh
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, context.Cause(ctx))
		}
	}
}

// signal makes a request on a 1-slot channel, which holds it until the
// receiver takes it; a request already pending covers this one.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// reconcileLoop reconciles on SetDesired, on new connections and
// periodically, logging failures: Sync is how callers see them.
func (c *Controller) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		triggered := false
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			select {
			case <-time.After(triggerDelay):
			case <-ctx.Done():
				return
			}
			// The reconcile reads the desired set after this, so it
			// covers the SetDesired calls of the wait too.
			select {
			case <-c.kick:
			default:
			}
			triggered = true
		case <-c.attached:
		case <-t.C:
		}
		c.mu.Lock()
		s := c.sess
		c.mu.Unlock()
		if s == nil {
			continue // the next connection triggers a reconcile
		}
		if err := s.reconcile(ctx, triggered); err != nil && ctx.Err() == nil {
			c.cfg.Logf("controller: reconcile: %v", err)
		}
	}
}

func (c *Controller) desiredSet() *desiredSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.desired
}

// SetDesired replaces the desired flows and meters and triggers a
// reconcile without waiting for it, unless they are those it has (the
// same encodings, notes and meters): it reports whether they changed.
// Flows with the same (Table, Priority, Match) are one flow entry: the
// last one given wins. A flow that cannot be encoded makes the next Sync
// fail (and is logged). The controller keeps the flows encoded, not
// flows' slices.
func (c *Controller) SetDesired(flows []Flow, meters []Meter) bool {
	d, err := newDesiredSet(flows, meters)
	if err != nil {
		c.cfg.Logf("controller: desired set: %v", err)
	}
	c.mu.Lock()
	if c.desired.gen > 0 && d.same(c.desired) {
		c.mu.Unlock()
		return false
	}
	d.gen = c.desired.gen + 1
	c.desired = d
	c.mu.Unlock()
	signal(c.kick)
	return true
}

// Sync reconciles now, waiting for the switch to connect if needed, and
// returns once the switch confirmed the changes with a BARRIER reply. The
// reconcile is its own: it reads the switch's flows back after Sync was
// called, whatever reconciles ran before. It returns the switch's
// refusals as *OFError (errors.As), joined.
func (c *Controller) Sync(ctx context.Context) error {
	for {
		s, err := c.session(ctx)
		if err != nil {
			return fmt.Errorf("controller: sync: %w", err)
		}
		err = s.reconcile(ctx, false)
		if errors.Is(err, ErrNotConnected) && ctx.Err() == nil {
			continue // the switch reconnects; converge on the new connection
		}
		if err != nil {
			return fmt.Errorf("controller: sync: %w", err)
		}
		return nil
	}
}

// FlowStats returns the switch's counters of the flows whose cookie
// matches cookie under cookieMask (0, 0 for all flows), with the Note of
// the desired flow each one is.
func (c *Controller) FlowStats(ctx context.Context, cookie, cookieMask uint64) ([]FlowStat, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("controller: flow stats: %w", err)
	}
	d := c.desiredSet()
	entries, err := s.flowStats(ctx, cookie, cookieMask)
	if err != nil {
		return nil, fmt.Errorf("controller: flow stats: %w", err)
	}
	stats := make([]FlowStat, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		st := FlowStat{
			Packets:  e.PacketCount,
			Bytes:    e.ByteCount,
			Duration: time.Duration(e.DurationSec)*time.Second + time.Duration(e.DurationNsec),
		}
		if df := d.flows[flowKey(e.TableID, e.Priority, e.Match)]; df != nil {
			st.Flow = Flow{Table: df.Table, Priority: df.Priority, Cookie: df.Cookie, Note: df.Note, Match: e.Match, Instructions: e.Instructions}
		} else {
			st.Flow = Flow{Table: e.TableID, Priority: e.Priority, Cookie: e.Cookie, Match: e.Match, Instructions: e.Instructions}
		}
		stats = append(stats, st)
	}
	return stats, nil
}

// Aggregates returns, for each of cookies, the totals (packets, bytes,
// flows) of the switch's flows whose cookie matches it under cookieMask:
// one AGGREGATE request each, all written at once. A caller polling
// counters asks for a flow dump only where a total moved, which an idle
// switch answers with a few bytes instead of every flow.
func (c *Controller) Aggregates(ctx context.Context, cookies []uint64, cookieMask uint64) ([]ofp.AggregateStats, error) {
	if len(cookies) == 0 {
		return nil, nil
	}
	s, err := c.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("controller: aggregate stats: %w", err)
	}
	out, err := s.aggregates(ctx, cookies, cookieMask)
	if err != nil {
		return nil, fmt.Errorf("controller: aggregate stats: %w", err)
	}
	return out, nil
}

// Connected reports whether a switch connection has completed its
// handshake and is up.
func (c *Controller) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// Sessions counts the switch connections that completed their handshake,
// so that a caller can tell the switch connected again (a restarted
// ovs-vswitchd) since it last looked.
func (c *Controller) Sessions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// Datapath returns the datapath id of the switch last connected, 0 if none.
func (c *Controller) Datapath() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dpid
}

// Ports returns the switch's ports, name to OpenFlow port number, as of
// the handshake's PORT_DESC and the PORT_STATUS messages since.
func (c *Controller) Ports() map[string]uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.ports)
}

// portStatus applies a PORT_STATUS to the ports of s: the controller's if
// s is the current session, else those s collects during its handshake.
func (c *Controller) portStatus(s *session, ps *ofp.PortStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ports := s.initialPorts
	if c.sess == s {
		ports = c.ports
	}
	if ps.Reason == ofp.PortReasonDelete {
		delete(ports, ps.Desc.Name)
	} else {
		ports[ps.Desc.Name] = ps.Desc.PortNo
	}
}

// OnPacketIn sets the function called with every PACKET_IN (nil: drop
// them). It runs on the connection's reading goroutine, so it must return
// quickly and must not wait for replies from the switch.
func (c *Controller) OnPacketIn(fn func(*ofp.PacketIn)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packetIn = fn
}

func (c *Controller) packetInFunc() func(*ofp.PacketIn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packetIn
}

// Send writes m to the switch (waiting for a connection) in order with
// every other message, without waiting for an answer; a zero Xid is
// replaced by a fresh one. It is meant for PACKET_OUT.
func (c *Controller) Send(ctx context.Context, m ofp.Message) error {
	s, err := c.session(ctx)
	if err != nil {
		return fmt.Errorf("controller: send: %w", err)
	}
	if err := s.send(ctx, m); err != nil {
		return fmt.Errorf("controller: send: %w", err)
	}
	return nil
}
