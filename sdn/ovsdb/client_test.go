package ovsdb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"uuid", UUID("u1"), `["uuid","u1"]`},
		{"named uuid", NamedUUID("br"), `["named-uuid","br"]`},
		{"nil set", Set(nil), `["set",[]]`},
		{"set", Set{"a", 1, NamedUUID("p")}, `["set",["a",1,["named-uuid","p"]]]`},
		{"map sorted", Map{"b": "2", "a": "1"}, `["map",[["a","1"],["b","2"]]]`},
		{"string map", StringMap(map[string]string{"k": "v"}), `["map",[["k","v"]]]`},
		{"condition", Eq("name", "br0"), `["name","==","br0"]`},
		{"mutation", Mutation{"ports", "insert", Set{UUID("x")}}, `["ports","insert",["set",[["uuid","x"]]]]`},
		{"select keeps empty where", Select("Bridge", nil), `{"op":"select","table":"Bridge","where":[]}`},
		{"insert", Insert("Port", Row{"name": "p"}, "port"), `{"op":"insert","row":{"name":"p"},"table":"Port","uuid-name":"port"}`},
		{"wait", Wait("Bridge", nil, nil, "==", nil, 0), `{"columns":[],"op":"wait","rows":[],"table":"Bridge","timeout":0,"until":"==","where":[]}`},
		{"comment", Comment("hi"), `{"comment":"hi","op":"comment"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
	for _, bad := range []any{
		Row{"external_ids": map[string]string{"a": "b"}}, // a Go map, not a Map
		Set{[]string{"x"}},
		Map{"k": Set{}},
	} {
		if b, err := json.Marshal(bad); err == nil {
			t.Errorf("Marshal(%#v) = %s, want an error", bad, b)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		want any // nil: decoding must fail
	}{
		{`"x"`, "x"},
		{`true`, true},
		{`42`, int64(42)},
		{`-1`, int64(-1)},
		{`1.5`, 1.5},
		{`2.0`, int64(2)},
		{`["uuid","u"]`, UUID("u")},
		{`["named-uuid","n"]`, NamedUUID("n")},
		{`["set",[]]`, Set{}},
		{`["set",[1,["uuid","a"]]]`, Set{int64(1), UUID("a")}},
		{`["map",[["k","v"],[1,["uuid","a"]]]]`, Map{"k": "v", int64(1): UUID("a")}},
		{`null`, nil},
		{`{}`, nil},
		{`[1,2]`, nil},
		{`["set",[["set",[]]]]`, nil},
		{`["set",{}]`, nil},
		{`["map",[["k"]]]`, nil},
		{`["uuid",1]`, nil},
		{`1e999`, nil},
	}
	for _, tt := range tests {
		var v any
		if err := decodeJSON([]byte(tt.in), &v); err != nil {
			t.Fatal(err)
		}
		got, err := decodeValue(v)
		if tt.want == nil {
			if err == nil {
				t.Errorf("decode %s = %#v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("decode %s = %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
}

func TestRowAccessors(t *testing.T) {
	var r Row
	in := `{"_uuid":["uuid","u"],"name":"br0","ofport":["set",[]],"ofport2":7,
		"protocols":"OpenFlow13","ports":["set",[["uuid","a"],["uuid","b"]]],
		"other_config":["map",[["k","v"]]]}`
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if r.UUID() != "u" || r.String("name") != "br0" || r.String("missing") != "" {
		t.Errorf("UUID/String: %v %q", r.UUID(), r.String("name"))
	}
	if _, ok := r.Int("ofport"); ok {
		t.Error("empty optional integer reported as set")
	}
	if n, ok := r.Int("ofport2"); !ok || n != 7 {
		t.Errorf("Int = %d, %v", n, ok)
	}
	if got := r.Strings("protocols"); !reflect.DeepEqual(got, []string{"OpenFlow13"}) {
		t.Errorf("Strings of a bare atom = %v", got)
	}
	if got := r.UUIDs("ports"); !reflect.DeepEqual(got, []UUID{"a", "b"}) {
		t.Errorf("UUIDs = %v", got)
	}
	if got := r.StringMap("other_config"); !reflect.DeepEqual(got, map[string]string{"k": "v"}) {
		t.Errorf("StringMap = %v", got)
	}
}

// fakeServer is the far end of a pipe, scripted by the test.
type fakeServer struct {
	t   *testing.T
	dec *json.Decoder
	enc *json.Encoder
}

func newFake(t *testing.T, opts ...Option) (*Client, *fakeServer) {
	a, b := net.Pipe()
	c := newClient(a, opts...)
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, &fakeServer{t, json.NewDecoder(b), json.NewEncoder(b)}
}

func (s *fakeServer) read() message {
	var m message
	if err := s.dec.Decode(&m); err != nil {
		s.t.Errorf("fake server read: %v", err)
	}
	return m
}

func (s *fakeServer) write(v any) {
	if err := s.enc.Encode(v); err != nil {
		s.t.Errorf("fake server write: %v", err)
	}
}

func TestResponsesMatchedByID(t *testing.T) {
	c, s := newFake(t, WithKeepalive(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	results := make(chan string, 2)
	for _, db := range []string{"A", "B"} {
		go func() {
			s, err := c.GetSchema(ctx, db)
			if err != nil {
				results <- err.Error()
				return
			}
			results <- db + "=" + s.Name
		}()
	}
	// Answer in reverse order of arrival, with the server's echo request
	// and an unknown notification in between.
	first, second := s.read(), s.read()
	s.write(map[string]any{"method": "echo", "params": []string{"ping"}, "id": "echo"})
	if reply := s.read(); string(reply.ID) != `"echo"` || string(reply.Result) != `["ping"]` {
		t.Errorf("echo reply = id %s result %s", reply.ID, reply.Result)
	}
	s.write(map[string]any{"method": "locked", "params": []string{"x"}, "id": nil})
	for _, req := range []message{second, first} {
		var params []string
		json.Unmarshal(req.Params, &params)
		s.write(map[string]any{"id": req.ID, "result": map[string]any{"name": params[0]}, "error": nil})
	}
	got := map[string]bool{<-results: true, <-results: true}
	if !got["A=A"] || !got["B=B"] {
		t.Errorf("results = %v, want A=A and B=B", got)
	}
}

func TestRequestErrorAndClose(t *testing.T) {
	c, s := newFake(t, WithKeepalive(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	go func() {
		req := s.read()
		s.write(map[string]any{"id": req.ID, "result": nil, "error": map[string]string{"error": "unknown database", "details": "no X"}})
		s.read() // the next call is never answered, and nothing more is read
	}()
	_, err := c.ListDBs(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Err != "unknown database" || e.Details != "no X" || e.Op != -1 {
		t.Fatalf("ListDBs error = %#v, want request-level *Error", err)
	}

	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := c.Echo(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered Echo = %v, want deadline exceeded", err)
	}

	done := make(chan error, 1)
	go func() { _, err := c.ListDBs(ctx); done <- err }()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("pending call after Close = %v, want ErrClosed", err)
	}
	if _, err := c.ListDBs(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close = %v, want ErrClosed", err)
	}
}

func TestKeepaliveClosesDeadConnection(t *testing.T) {
	c, s := newFake(t, WithKeepalive(30*time.Millisecond))
	go func() {
		for {
			var m message
			if s.dec.Decode(&m) != nil {
				return
			}
			// Read but never answer: a hung server.
		}
	}()
	select {
	case <-c.Done():
		if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "keepalive") {
			t.Errorf("Err() = %v, want a keepalive ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("keepalive did not close a connection whose server stopped answering")
	}
}

func TestMonitorOrder(t *testing.T) {
	c, s := newFake(t, WithKeepalive(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 3)
	go func() {
		req := s.read()
		var params []json.RawMessage
		json.Unmarshal(req.Params, &params)
		// The update is written right after the reply: it must still be
		// delivered after the initial rows.
		s.write(map[string]any{"id": req.ID, "error": nil, "result": map[string]any{
			"Bridge": map[string]any{"u1": map[string]any{"new": map[string]any{"name": "initial"}}}}})
		s.write(map[string]any{"id": nil, "method": "update", "params": []any{params[1], map[string]any{
			"Bridge": map[string]any{"u2": map[string]any{"new": map[string]any{"name": "update"}}}}}})
	}()
	_, err := c.Monitor(ctx, "Open_vSwitch", map[string][]string{"Bridge": nil}, func(tu TableUpdates) {
		for _, ru := range tu["Bridge"] {
			got <- ru.New.String("name")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"initial", "update"} {
		select {
		case name := <-got:
			if name != want {
				t.Errorf("got %s, want %s", name, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %s delivered", want)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the decoders and to a live client's
// reader: nothing may panic, and decoded values must re-encode stably.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"result":[{"rows":[{"_uuid":["uuid","a"],"ofport":["set",[]]}]},{"uuid":["uuid","b"]},{"count":1}],"error":null}`,
		`{"id":null,"method":"update","params":["m1",{"Interface":{"u":{"old":null,"new":{"name":"x","ofport":3}}}}]}`,
		`{"id":"echo","method":"echo","params":[]}`,
		`{"id":2,"result":null,"error":{"error":"syntax error","details":"d"}}`,
		`["map",[["k",["uuid","x"]],[1,2.5]]]`,
		`["set",[true,"s",-7]]`,
		`[{"error":"timed out"},null]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if decodeJSON(b, &v) == nil {
			if dv, err := decodeValue(v); err == nil {
				enc1 := mustMarshal(t, dv)
				var v2 any
				if err := decodeJSON(enc1, &v2); err != nil {
					t.Fatalf("re-decode %s: %v", enc1, err)
				}
				dv2, err := decodeValue(v2)
				if err != nil {
					t.Fatalf("re-decode %s: %v", enc1, err)
				}
				if enc2 := mustMarshal(t, dv2); string(enc1) != string(enc2) {
					t.Fatalf("unstable encoding: %s then %s", enc1, enc2)
				}
			}
		}
		var row Row
		_ = json.Unmarshal(b, &row)
		var results []Result
		_ = json.Unmarshal(b, &results)
		_, _ = parseTableUpdates(b)
		_ = parseError(b, 0).Error()

		// The whole receive path, answering echoes into a drained pipe.
		a, z := net.Pipe()
		c := newClient(a, WithKeepalive(0))
		go io.Copy(io.Discard, z)
		pending := make(chan error, 1)
		go func() { _, err := c.ListDBs(context.Background()); pending <- err }()
		z.Write(b)
		z.Close()
		<-c.Done()
		<-pending
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	return b
}
