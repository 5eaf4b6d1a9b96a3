package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"paradrop/sdn/ofp"
)

// fakeSwitch is the switch end of a connection, scripted by a test.
type fakeSwitch struct {
	t    *testing.T
	conn net.Conn
}

// runController runs a controller with cfg until the test ends.
func runController(t *testing.T, cfg Config) (*Controller, string) {
	t.Helper()
	c := New(cfg)
	addr, err := c.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c, addr.String()
}

func dialFake(t *testing.T, addr string) *fakeSwitch {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fakeSwitch{t: t, conn: conn}
}

func (f *fakeSwitch) write(m ofp.Message) {
	f.t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.conn.Write(b); err != nil {
		f.t.Fatal(err)
	}
}

// read returns the next message from the controller, or the error.
func (f *fakeSwitch) read() (ofp.Message, error) {
	f.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	return ofp.ReadMessage(f.conn)
}

func (f *fakeSwitch) mustRead() ofp.Message {
	f.t.Helper()
	m, err := f.read()
	if err != nil {
		f.t.Fatalf("fake switch: read: %v", err)
	}
	return m
}

// handshake plays the switch's side of the handshake, giving the port
// descriptions in two multipart parts.
func (f *fakeSwitch) handshake(dpid uint64) {
	f.t.Helper()
	f.write(ofp.NewHello(ofp.Version))
	if m := f.mustRead(); m.MsgHeader().Type != ofp.TypeHello {
		f.t.Fatalf("first message %T, want HELLO", m)
	}
	fr, ok := f.mustRead().(*ofp.FeaturesRequest)
	if !ok {
		f.t.Fatal("no FEATURES_REQUEST")
	}
	f.write(&ofp.FeaturesReply{Header: ofp.Header{Xid: fr.Xid}, DatapathID: dpid, NTables: 254})
	pd, ok := f.mustRead().(*ofp.StatsRequest)
	if !ok || pd.MPType != ofp.MPPortDesc {
		f.t.Fatal("no PORT_DESC request")
	}
	f.write(&ofp.PortDescStatsReply{Header: ofp.Header{Xid: pd.Xid}, Flags: ofp.MultipartFlagMore,
		Body: []ofp.Port{{PortNo: 1, Name: "lan"}}})
	f.write(&ofp.PortDescStatsReply{Header: ofp.Header{Xid: pd.Xid}, Body: []ofp.Port{{PortNo: 2, Name: "chute"}}})
	if _, ok := f.mustRead().(*ofp.SetConfig); !ok {
		f.t.Fatal("no SET_CONFIG")
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestSilentSwitchDropped: a switch that completes the handshake, then
// stops answering, is dropped once an echo goes unanswered for
// EchoTimeout; until then the controller answers the switch's echoes.
func TestSilentSwitchDropped(t *testing.T) {
	const interval, timeout = 50 * time.Millisecond, 300 * time.Millisecond
	c, addr := runController(t, Config{Listen: "127.0.0.1:0", EchoInterval: interval, EchoTimeout: timeout, Logf: t.Logf})
	f := dialFake(t, addr)
	f.handshake(42)
	waitFor(t, "connected", c.Connected)
	if got := c.Datapath(); got != 42 {
		t.Errorf("Datapath() = %d, want 42", got)
	}
	if got := c.Ports(); len(got) != 2 || got["lan"] != 1 || got["chute"] != 2 {
		t.Errorf("Ports() = %v, want both multipart parts' ports", got)
	}

	f.write(&ofp.EchoRequest{Header: ofp.Header{Xid: 99}, Data: []byte("ping")})
	silentSince := time.Now()
	answered := false
	for {
		m, err := f.read()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("fake switch: read: %v, want EOF when dropped", err)
			}
			break
		}
		if r, ok := m.(*ofp.EchoReply); ok && r.Xid == 99 && string(r.Data) == "ping" {
			answered = true
		}
	}
	took := time.Since(silentSince)
	if !answered {
		t.Error("the controller did not answer the switch's echo")
	}
	if took < timeout || took > timeout+interval+time.Second {
		t.Errorf("dropped after %v, want about EchoTimeout (%v) after the first unanswered echo", took, timeout)
	}
	waitFor(t, "disconnected", func() bool { return !c.Connected() })
}

// TestHelloVersionRefused: a switch that offers only OpenFlow 1.0 gets
// HELLO_FAILED and the connection is closed.
func TestHelloVersionRefused(t *testing.T) {
	tests := []struct {
		name  string
		hello *ofp.Hello
	}{
		{"1.0 without bitmap", &ofp.Hello{Header: ofp.Header{Version: 1}}},
		{"bitmap without 1.3", func() *ofp.Hello { h := ofp.NewHello(1, 5); h.Version = 5; return h }()},
	}
	c, addr := runController(t, Config{Listen: "127.0.0.1:0", Logf: t.Logf})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := dialFake(t, addr)
			f.write(tt.hello)
			if m := f.mustRead(); m.MsgHeader().Type != ofp.TypeHello {
				t.Fatalf("first message %T, want HELLO", m)
			}
			e, ok := f.mustRead().(*ofp.ErrorMsg)
			if !ok || e.ErrType != ErrTypeHelloFailed {
				t.Fatalf("want ERROR HELLO_FAILED, got %+v", e)
			}
			if m, err := f.read(); !errors.Is(err, io.EOF) {
				t.Fatalf("after HELLO_FAILED: %v, %v; want EOF", m, err)
			}
			if c.Connected() {
				t.Error("Connected() after a refused handshake")
			}
		})
	}
}

// FuzzDispatch feeds arbitrary switch output through the controller's
// framing and dispatch: nothing may panic, and waiters get an answer or
// nothing, never a hang of the reader.
func FuzzDispatch(f *testing.F) {
	for _, m := range []ofp.Message{
		&ofp.EchoRequest{Header: ofp.Header{Xid: 1}, Data: []byte("x")},
		&ofp.ErrorMsg{Header: ofp.Header{Xid: 2}, ErrType: 5, Code: 1},
		&ofp.ErrorMsg{Header: ofp.Header{Xid: 11}, ErrType: ofp.ErrorTypeExperimenter, ExpType: 3, Experimenter: 0x2320},
		&ofp.FlowStatsReply{Header: ofp.Header{Xid: 3}, Flags: ofp.MultipartFlagMore},
		&ofp.FlowStatsReply{Header: ofp.Header{Xid: 3}},
		&ofp.BarrierReply{Header: ofp.Header{Xid: 20}},
		&ofp.PortStatus{Reason: ofp.PortReasonAdd, Desc: ofp.Port{PortNo: 3, Name: "x"}},
		&ofp.PacketIn{Data: []byte{1, 2, 3}},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{4, 19, 0, 8, 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := New(Config{Logf: func(string, ...any) {}})
		c.OnPacketIn(func(*ofp.PacketIn) {})
		a, b := net.Pipe()
		defer b.Close()
		s := newSession(c, a)
		c.attach(s)
		s.close(errors.New("fuzzing")) // replies to echoes fail at once
		for _, xid := range []uint32{2, 3} {
			s.register(xid, &call{done: make(chan struct{})})
		}
		s.register(20, &call{done: make(chan struct{}), lo: 10, n: 5, describe: func(int) string { return "req" }})
		r := bytes.NewReader(data)
		for {
			m, err := readMessage(r)
			if err != nil {
				return
			}
			s.dispatch(m)
		}
	})
}
