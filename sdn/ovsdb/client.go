package ovsdb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by calls on a client whose connection is closed or
// broken; the cause, if any, is wrapped alongside it.
var ErrClosed = errors.New("ovsdb: connection closed")

// Error is an error reported by the server: either for a whole request
// (the JSON-RPC "error" member, e.g. "unknown database") or for one
// transaction operation (e.g. "constraint violation").
type Error struct {
	Err     string // the "error" member
	Details string // the "details" member, may be empty
	// Op is the index of the failed operation in a transaction, -1 for
	// request-level errors. It equals the number of operations when the
	// commit itself failed (e.g. a referential integrity violation).
	Op     int
	OpName string // the op of the failed operation, "" if Op is out of range
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("ovsdb: ")
	if e.Op >= 0 {
		fmt.Fprintf(&b, "operation %d", e.Op)
		if e.OpName != "" {
			fmt.Fprintf(&b, " (%s)", e.OpName)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Err)
	if e.Details != "" {
		b.WriteString(": ")
		b.WriteString(e.Details)
	}
	return b.String()
}

// Option configures Dial.
type Option func(*Client)

// WithKeepalive sets how often the client sends an echo request when idle;
// a connection whose echo is not answered within the same interval is
// closed, so a hung server is noticed. Zero disables it. Default 5s.
func WithKeepalive(interval time.Duration) Option {
	return func(c *Client) { c.keepalive = interval }
}

// Client is a connection to an OVSDB server.
type Client struct {
	conn      net.Conn
	keepalive time.Duration

	writeMu sync.Mutex // serializes whole messages on conn

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]*call
	monitors map[string]*Monitor
	err      error // why the connection ended, set once

	lastRead chan struct{} // signalled (non-blocking) on each received message
	done     chan struct{}
}

type call struct {
	ch chan response
	// onResult, if set, runs in the reader goroutine before the caller is
	// woken, so a monitor's initial rows are queued ahead of any update
	// notification that follows the reply.
	onResult func(json.RawMessage)
}

type response struct {
	result json.RawMessage
	err    error
}

// message is any JSON-RPC 1.0 message: request, notification or response.
type message struct {
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

// Dial connects to an OVSDB server at "unix:/path" or "tcp:host:port".
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || (network != "unix" && network != "tcp") {
		return nil, fmt.Errorf("ovsdb: dial %q: address must be unix:PATH or tcp:HOST:PORT", addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: dial %q: %w", addr, err)
	}
	return newClient(conn, opts...), nil
}

func newClient(conn net.Conn, opts ...Option) *Client {
	c := &Client{
		conn:      conn,
		keepalive: 5 * time.Second,
		pending:   make(map[uint64]*call),
		monitors:  make(map[string]*Monitor),
		lastRead:  make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	go c.readLoop()
	if c.keepalive > 0 {
		go c.keepaliveLoop()
	}
	return c
}

// Close closes the connection; pending and later calls fail with ErrClosed.
func (c *Client) Close() error {
	c.shutdown(nil)
	return nil
}

// Done is closed when the connection has ended (Close, EOF, protocol error
// or failed keepalive); Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is up, then an error wrapping
// ErrClosed and the cause.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) shutdown(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if cause == nil {
		c.err = ErrClosed
	} else {
		c.err = fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	pending := c.pending
	c.pending = nil
	monitors := c.monitors
	c.monitors = nil
	err := c.err
	c.mu.Unlock()

	c.conn.Close()
	for _, p := range pending {
		p.ch <- response{err: err}
	}
	for _, m := range monitors {
		m.q.close()
	}
	close(c.done)
}

func (c *Client) readLoop() {
	dec := json.NewDecoder(bufio.NewReader(c.conn))
	for {
		var msg message
		if err := dec.Decode(&msg); err != nil {
			c.shutdown(err)
			return
		}
		select {
		case c.lastRead <- struct{}{}:
		default:
		}
		if err := c.handle(&msg); err != nil {
			c.shutdown(err)
			return
		}
	}
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// handle dispatches one received message. It must not block on the
// network for long, since it runs in the reader goroutine.
func (c *Client) handle(msg *message) error {
	switch {
	case msg.Method == "echo" && !isNull(msg.ID):
		// The server probes us; answering keeps it from dropping the
		// connection.
		params := msg.Params
		if isNull(params) {
			params = json.RawMessage("[]")
		}
		return c.send(context.Background(), message{Result: params, ID: msg.ID, Error: json.RawMessage("null")})
	case msg.Method == "update":
		var params []json.RawMessage
		if err := json.Unmarshal(msg.Params, &params); err != nil || len(params) != 2 {
			return fmt.Errorf("malformed update notification: %s", truncate(msg.Params))
		}
		var id string
		if err := json.Unmarshal(params[0], &id); err != nil {
			return nil // not one of ours: our monitor ids are strings
		}
		updates, err := parseTableUpdates(params[1])
		if err != nil {
			return fmt.Errorf("update notification: %w", err)
		}
		c.mu.Lock()
		m := c.monitors[id]
		c.mu.Unlock()
		if m != nil {
			m.q.push(updates)
		}
		return nil
	case msg.Method != "":
		// Other requests ("locked", "stolen", ...) concern features we
		// do not use. Requests needing an answer get an error.
		if isNull(msg.ID) {
			return nil
		}
		return c.send(context.Background(), message{Result: json.RawMessage("null"), ID: msg.ID,
			Error: json.RawMessage(strconv.Quote("unknown method " + msg.Method))})
	}
	id, err := strconv.ParseUint(string(msg.ID), 10, 64)
	if err != nil {
		return fmt.Errorf("response with unexpected id %s", truncate(msg.ID))
	}
	c.mu.Lock()
	p := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if p == nil {
		return nil // the caller gave up (context done)
	}
	if !isNull(msg.Error) {
		p.ch <- response{err: parseError(msg.Error, -1)}
		return nil
	}
	if p.onResult != nil {
		p.onResult(msg.Result)
	}
	p.ch <- response{result: msg.Result}
	return nil
}

// parseError turns an "error" member (usually {"error":..., "details":...}
// but any JSON value is allowed) into an *Error.
func parseError(raw json.RawMessage, op int) *Error {
	var obj struct {
		Error   string `json:"error"`
		Details string `json:"details"`
	}
	if err := json.Unmarshal(raw, &obj); err == nil && obj.Error != "" {
		return &Error{Err: obj.Error, Details: obj.Details, Op: op}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return &Error{Err: s, Op: op}
	}
	return &Error{Err: string(truncate(raw)), Op: op}
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func (c *Client) send(ctx context.Context, msg message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	deadline, _ := ctx.Deadline() // zero means none
	c.conn.SetWriteDeadline(deadline)
	if _, err := c.conn.Write(b); err != nil {
		// A partial write leaves the stream unusable.
		c.shutdown(err)
		return err
	}
	return nil
}

// call sends a request and waits for its response, decoding the result
// into out unless out is nil.
func (c *Client) call(ctx context.Context, method string, params any, out any, onResult func(json.RawMessage)) error {
	p := &call{ch: make(chan response, 1), onResult: onResult}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = p
	c.mu.Unlock()

	pb, err := json.Marshal(params)
	if err == nil {
		err = c.send(ctx, message{Method: method, Params: pb, ID: json.RawMessage(strconv.FormatUint(id, 10))})
	}
	if err != nil {
		c.forget(id)
		if cerr := c.Err(); cerr != nil {
			err = cerr // the write failed because the connection is gone
		}
		return fmt.Errorf("ovsdb: %s: %w", method, err)
	}
	select {
	case r := <-p.ch:
		if r.err != nil {
			return r.err
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(r.result, out); err != nil {
			return fmt.Errorf("ovsdb: %s: decode result: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("ovsdb: %s: %w", method, ctx.Err())
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Echo sends an echo request and checks that the server answers it with
// the same payload.
func (c *Client) Echo(ctx context.Context) error {
	want := []string{"paradrop", strconv.FormatInt(time.Now().UnixNano(), 10)}
	var got []string
	if err := c.call(ctx, "echo", want, &got, nil); err != nil {
		return err
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		return fmt.Errorf("ovsdb: echo: got %q, want %q", got, want)
	}
	return nil
}

func (c *Client) keepaliveLoop() {
	t := time.NewTicker(c.keepalive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.lastRead:
			continue // traffic proves the server alive; skip this probe
		case <-t.C:
		}
		select {
		case <-c.lastRead:
			continue
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.keepalive)
		err := c.Echo(ctx)
		cancel()
		if err != nil {
			c.shutdown(fmt.Errorf("keepalive: %w", err))
			return
		}
	}
}

// ListDBs returns the names of the databases the server holds.
func (c *Client) ListDBs(ctx context.Context) ([]string, error) {
	var dbs []string
	if err := c.call(ctx, "list_dbs", []any{}, &dbs, nil); err != nil {
		return nil, err
	}
	return dbs, nil
}

// Schema is the part of a database schema the daemon looks at; Raw holds
// the complete schema.
type Schema struct {
	Name    string                 `json:"name"`
	Version string                 `json:"version"`
	Tables  map[string]TableSchema `json:"tables"`
	Raw     json.RawMessage        `json:"-"`
}

// TableSchema lists a table's columns; each column's type is left as raw
// JSON.
type TableSchema struct {
	Columns map[string]json.RawMessage `json:"columns"`
	IsRoot  bool                       `json:"isRoot"`
}

// GetSchema fetches the schema of database db.
func (c *Client) GetSchema(ctx context.Context, db string) (*Schema, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "get_schema", []string{db}, &raw, nil); err != nil {
		return nil, err
	}
	s := &Schema{Raw: raw}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("ovsdb: get_schema %q: %w", db, err)
	}
	return s, nil
}
