package controller

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"paradrop/sdn/ofp"
)

// session is one switch connection. One goroutine reads (readLoop) and
// never blocks on writes; writers take wsem in turn, so messages leave
// strictly in order, each batch in one buffered run of writes.
type session struct {
	c    *Controller
	conn net.Conn
	br   *bufio.Reader

	wsem chan struct{} // 1-slot semaphore guarding bw; a channel so waiting honours ctx
	bw   *bufio.Writer
	xid  atomic.Uint32

	recSem chan struct{} // one reconcile at a time: they read then write the same flows
	// confirmed is the generation of the desired set the last successful
	// reconcile converged to, 0 for none; guarded by recSem.
	confirmed uint64

	pmu     sync.Mutex
	pending map[uint32]*call // by xid of the request (a batch: of its barrier)
	batches map[*call]bool   // batches in flight, which collect their requests' ERRORs

	done      chan struct{}
	closeOnce sync.Once
	err       error // why the session ended, wrapping ErrNotConnected; set before done closes

	dpid uint64
	// initialPorts collects PORT_DESC and PORT_STATUS until the session
	// is attached; guarded by c.mu.
	initialPorts map[string]uint32
}

// call is a request waiting for its reply: done closes once parts holds
// the whole (possibly multipart) reply or err is set.
type call struct {
	done  chan struct{}
	parts []ofp.Message
	err   error

	// Batches only: requests lo..lo+n-1 were sent before the barrier,
	// errs collects their refusals, describe(i) names request lo+i.
	lo, n    uint32
	describe func(i int) string
	errs     []error
}

const bufSize = 64 << 10

func newSession(c *Controller, conn net.Conn) *session {
	return &session{
		c:       c,
		conn:    conn,
		br:      bufio.NewReaderSize(conn, bufSize),
		bw:      bufio.NewWriterSize(conn, bufSize),
		wsem:    make(chan struct{}, 1),
		recSem:  make(chan struct{}, 1),
		pending: map[uint32]*call{},
		batches: map[*call]bool{},
		done:    make(chan struct{}),

		initialPorts: map[string]uint32{},
	}
}

// close ends the session for cause, failing every waiter.
func (s *session) close(cause error) {
	s.closeOnce.Do(func() {
		s.err = fmt.Errorf("%w: %w", ErrNotConnected, cause)
		close(s.done)
		s.conn.Close()
	})
}

// handshake negotiates OpenFlow 1.3, learns the datapath id and ports and
// configures the switch. It starts the reading goroutine.
func (s *session) handshake(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.EchoTimeout)
	defer cancel()
	if err := s.send(ctx, ofp.NewHello(ofp.Version)); err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	s.conn.SetReadDeadline(deadline)
	m, err := readMessage(s.br)
	s.conn.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("reading HELLO: %w", err)
	}
	m2, err := ofp.Decode(m)
	if err != nil {
		return fmt.Errorf("reading HELLO: %w", err)
	}
	hello, ok := m2.(*ofp.Hello)
	if !ok {
		return fmt.Errorf("switch sent %T before HELLO", m2)
	}
	if !offers13(hello) {
		// HELLO_FAILED/INCOMPATIBLE, as the spec asks before closing.
		s.send(ctx, &ofp.ErrorMsg{ErrType: ErrTypeHelloFailed, Code: 0, Data: []byte("paradrop speaks OpenFlow 1.3 only")})
		return fmt.Errorf("switch does not offer OpenFlow 1.3 (HELLO version %d)", hello.Version)
	}
	go s.readLoop()

	parts, err := s.roundTrip(ctx, &ofp.FeaturesRequest{})
	if err != nil {
		return fmt.Errorf("features request: %w", err)
	}
	features, ok := parts[0].(*ofp.FeaturesReply)
	if !ok {
		return fmt.Errorf("features request answered by %T", parts[0])
	}
	s.dpid = features.DatapathID

	parts, err = s.roundTrip(ctx, &ofp.StatsRequest{MPType: ofp.MPPortDesc})
	if err != nil {
		return fmt.Errorf("port description request: %w", err)
	}
	s.c.mu.Lock() // the reader may be applying a PORT_STATUS
	for _, p := range parts {
		if r, ok := p.(*ofp.PortDescStatsReply); ok {
			for _, port := range r.Body {
				s.initialPorts[port.Name] = port.PortNo
			}
		}
	}
	s.c.mu.Unlock()
	// Whole packets to the controller: PACKET_IN users want them and
	// OVS's userspace datapath has no buffers anyway.
	cfg := &ofp.SetConfig{SwitchConfig: ofp.SwitchConfig{Flags: ofp.ConfigFragNormal, MissSendLen: ofp.MaxLenNoBuffer}}
	if err := s.send(ctx, cfg); err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	return nil
}

// offers13 applies the HELLO negotiation rule: with a version bitmap, 1.3
// must be in it; without, the peer's highest version must reach 1.3.
func offers13(h *ofp.Hello) bool {
	for _, e := range h.Elements {
		if bm, ok := e.(*ofp.HelloElemVersionBitmap); ok {
			for _, v := range bm.Versions() {
				if v == ofp.Version {
					return true
				}
			}
			return false
		}
	}
	return h.Version >= ofp.Version
}

// readMessage reads one framed message. Framing is ours, not
// ofp.ReadMessage's, so that a message the codec cannot decode costs only
// itself (its waiter gets the error) and not the connection.
func readMessage(r io.Reader) ([]byte, error) {
	var hdr [ofp.HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[2:]))
	if n < ofp.HeaderLen {
		return nil, fmt.Errorf("message length %d below %d", n, ofp.HeaderLen)
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[ofp.HeaderLen:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

func (s *session) readLoop() {
	for {
		b, err := readMessage(s.br)
		if err != nil {
			s.close(fmt.Errorf("read: %w", err))
			return
		}
		s.dispatch(b)
	}
}

// dispatch handles one framed message from the switch.
func (s *session) dispatch(b []byte) {
	xid := binary.BigEndian.Uint32(b[4:])
	m, err := ofp.Decode(b)
	if err != nil {
		err = fmt.Errorf("message type %d from the switch: %w", b[1], err)
		if !s.finish(xid, nil, err) {
			s.c.cfg.Logf("controller: %v", err)
		}
		return
	}
	switch m := m.(type) {
	case *ofp.EchoRequest:
		// Not inline: a reader blocked behind a long write could
		// deadlock with a switch that stops reading while we don't.
		go s.send(context.Background(), &ofp.EchoReply{Header: ofp.Header{Xid: m.Xid}, Data: m.Data})
	case *ofp.PacketIn:
		if fn := s.c.packetInFunc(); fn != nil {
			fn(m)
		}
	case *ofp.PortStatus:
		s.c.portStatus(s, m)
	case *ofp.ErrorMsg:
		s.refused(m)
	default:
		s.finish(xid, m, nil) // a reply to nobody (e.g. to Send) is dropped
	}
}

// finish hands a reply (or a failure) to the call waiting for xid and
// reports whether there was one. Multipart parts accumulate until the
// last one.
func (s *session) finish(xid uint32, m ofp.Message, err error) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	cl := s.pending[xid]
	if cl == nil {
		return false
	}
	if err != nil {
		cl.err = err
	} else {
		cl.parts = append(cl.parts, m)
		if more(m) {
			return true
		}
	}
	delete(s.pending, xid)
	delete(s.batches, cl)
	close(cl.done)
	return true
}

// refused routes an ERROR to the request it answers: a waiting call, or
// the batch whose xid range holds it.
func (s *session) refused(m *ofp.ErrorMsg) {
	s.pmu.Lock()
	for cl := range s.batches {
		if i := m.Xid - cl.lo; i < cl.n {
			cl.errs = append(cl.errs, newOFError(m, cl.describe(int(i))))
			s.pmu.Unlock()
			return
		}
	}
	s.pmu.Unlock()
	if !s.finish(m.Xid, nil, newOFError(m, fmt.Sprintf("request xid %d", m.Xid))) {
		s.c.cfg.Logf("controller: %v", newOFError(m, fmt.Sprintf("unknown request xid %d", m.Xid)))
	}
}

// more reports whether a multipart reply says more parts follow; only
// the multipart requests the controller makes are awaited.
func more(m ofp.Message) bool {
	var flags uint16
	switch r := m.(type) {
	case *ofp.FlowStatsReply:
		flags = r.Flags
	case *ofp.MeterConfigStatsReply:
		flags = r.Flags
	case *ofp.PortDescStatsReply:
		flags = r.Flags
	}
	return flags&ofp.MultipartFlagMore != 0
}

func (s *session) register(xid uint32, cl *call) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.pending[xid] = cl
	if cl.n > 0 {
		s.batches[cl] = true
	}
}

func (s *session) forget(xid uint32, cl *call) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.pending[xid] == cl {
		delete(s.pending, xid)
	}
	delete(s.batches, cl)
}

// write runs fn with the buffered writer, in turn with other writers, and
// flushes. A failed or abandoned write leaves the stream broken mid-message,
// so it ends the session.
func (s *session) write(ctx context.Context, fn func(w *bufio.Writer) error) error {
	select {
	case s.wsem <- struct{}{}:
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-s.wsem }()
	stop := context.AfterFunc(ctx, func() { s.close(errors.New("write abandoned: " + context.Cause(ctx).Error())) })
	defer stop()
	err := fn(s.bw)
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		s.close(fmt.Errorf("write: %w", err))
		return s.err
	}
	return nil
}

// send writes m, giving it a fresh xid if it has none.
func (s *session) send(ctx context.Context, m ofp.Message) error {
	if h := m.MsgHeader(); h.Xid == 0 {
		h.Xid = s.xid.Add(1)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *bufio.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// roundTrip sends m with a fresh xid and returns its reply (every part of
// a multipart reply), or the switch's ERROR as *OFError.
func (s *session) roundTrip(ctx context.Context, m ofp.Message) ([]ofp.Message, error) {
	xid := s.xid.Add(1)
	m.MsgHeader().Xid = xid
	cl := &call{done: make(chan struct{})}
	s.register(xid, cl)
	defer s.forget(xid, cl)
	if err := s.send(ctx, m); err != nil {
		return nil, err
	}
	return s.wait(ctx, cl)
}

func (s *session) wait(ctx context.Context, cl *call) ([]ofp.Message, error) {
	select {
	case <-cl.done:
		return cl.parts, cl.err
	case <-s.done:
		select {
		case <-cl.done: // answered just before the end
			return cl.parts, cl.err
		default:
			return nil, s.err
		}
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// batch writes pre-encoded messages (their xid bytes are overwritten)
// followed by a BARRIER in one buffered run, waits for the barrier reply
// and returns the switch's refusals of any of them. describe(i) names
// message i in errors.
func (s *session) batch(ctx context.Context, msgs [][]byte, describe func(i int) string) error {
	n := uint32(len(msgs))
	barrier := s.xid.Add(n + 1)
	lo := barrier - n
	b, err := (&ofp.BarrierRequest{Header: ofp.Header{Xid: barrier}}).MarshalBinary()
	if err != nil {
		return err
	}
	// Registered before writing: with the buffer flushing as it fills,
	// refusals can arrive before the last message is written.
	cl := &call{done: make(chan struct{}), lo: lo, n: n, describe: describe}
	s.register(barrier, cl)
	defer s.forget(barrier, cl)
	err = s.write(ctx, func(w *bufio.Writer) error {
		var x [4]byte
		for i, m := range msgs {
			binary.BigEndian.PutUint32(x[:], lo+uint32(i))
			w.Write(m[:4])
			w.Write(x[:])
			w.Write(m[8:])
		}
		_, err := w.Write(b)
		return err // bufio keeps the first error, so the last write reports it
	})
	if err != nil {
		return err
	}
	if _, err := s.wait(ctx, cl); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return joinRefusals(cl.errs)
}

// keepalive probes the switch every interval until the session ends,
// ending it when a probe goes unanswered for timeout. It returns why the
// session ended.
func (s *session) keepalive(interval, timeout time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return s.err
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_, err := s.roundTrip(ctx, &ofp.EchoRequest{})
		cancel()
		if err != nil {
			s.close(fmt.Errorf("echo: no reply within %v: %w", timeout, err))
		}
	}
}

// flowStats reads the switch's flow entries of every table whose cookie
// matches.
func (s *session) flowStats(ctx context.Context, cookie, mask uint64) ([]ofp.FlowStats, error) {
	parts, err := s.roundTrip(ctx, &ofp.FlowStatsRequest{
		TableID: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Cookie: cookie, CookieMask: mask,
	})
	if err != nil {
		return nil, fmt.Errorf("reading flows: %w", err)
	}
	var flows []ofp.FlowStats
	for _, p := range parts {
		if r, ok := p.(*ofp.FlowStatsReply); ok {
			flows = append(flows, r.Body...)
		}
	}
	return flows, nil
}

// aggregates sends an AGGREGATE request per cookie in one run of writes
// and waits for every answer.
func (s *session) aggregates(ctx context.Context, cookies []uint64, mask uint64) ([]ofp.AggregateStats, error) {
	n := uint32(len(cookies))
	lo := s.xid.Add(n) - n + 1
	calls := make([]*call, n)
	msgs := make([][]byte, n)
	for i, cookie := range cookies {
		xid := lo + uint32(i)
		b, err := (&ofp.AggregateStatsRequest{FlowStatsRequest: ofp.FlowStatsRequest{
			Header:  ofp.Header{Xid: xid},
			TableID: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
			Cookie: cookie, CookieMask: mask,
		}}).MarshalBinary()
		if err != nil {
			return nil, err
		}
		msgs[i], calls[i] = b, &call{done: make(chan struct{})}
		s.register(xid, calls[i])
		defer s.forget(xid, calls[i])
	}
	err := s.write(ctx, func(w *bufio.Writer) error {
		for _, b := range msgs {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]ofp.AggregateStats, n)
	// The switch answers in order: waiting for the last answer first
	// wakes this goroutine once, not once an answer.
	for i := len(calls) - 1; i >= 0; i-- {
		parts, err := s.wait(ctx, calls[i])
		if err != nil {
			return nil, fmt.Errorf("aggregate of cookie %#x: %w", cookies[i], err)
		}
		r, ok := parts[0].(*ofp.AggregateStatsReply)
		if !ok {
			return nil, fmt.Errorf("aggregate of cookie %#x answered by %T", cookies[i], parts[0])
		}
		out[i] = r.Body
	}
	return out, nil
}

// meters reads the switch's meter configurations.
func (s *session) meters(ctx context.Context) ([]ofp.MeterConfig, error) {
	parts, err := s.roundTrip(ctx, &ofp.MeterStatsRequest{MPType: ofp.MPMeterConfig, MeterID: ofp.MeterAll})
	if err != nil {
		return nil, fmt.Errorf("reading meters: %w", err)
	}
	var ms []ofp.MeterConfig
	for _, p := range parts {
		if r, ok := p.(*ofp.MeterConfigStatsReply); ok {
			ms = append(ms, r.Body...)
		}
	}
	return ms, nil
}
