package ovsdb

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
)

// RowUpdate is the change of one row: Old is nil for an insert (and for
// the initial contents), New is nil for a delete. For a modification Old
// holds only the changed columns, as RFC 7047 specifies.
type RowUpdate struct {
	Old Row `json:"old"`
	New Row `json:"new"`
}

// TableUpdates maps table name to row UUID to that row's change.
type TableUpdates map[string]map[UUID]RowUpdate

func parseTableUpdates(raw json.RawMessage) (TableUpdates, error) {
	var byTable map[string]map[string]RowUpdate
	if err := json.Unmarshal(raw, &byTable); err != nil {
		return nil, err
	}
	tu := make(TableUpdates, len(byTable))
	for table, rows := range byTable {
		m := make(map[UUID]RowUpdate, len(rows))
		for id, ru := range rows {
			m[UUID(id)] = ru
		}
		tu[table] = m
	}
	return tu, nil
}

// Monitor is an active monitor; see Client.Monitor.
type Monitor struct {
	c  *Client
	id string
	q  *updateQueue
}

// Monitor starts monitoring the given tables of db, each mapped to the
// columns to watch (nil for all). fn is first called with the current
// contents (as inserts) and then with every change, one call at a time
// and in order, from a goroutine of its own, so it may call back into the
// client. Delivery stops when the monitor is cancelled or the connection
// ends (see Client.Done).
func (c *Client) Monitor(ctx context.Context, db string, tables map[string][]string, fn func(TableUpdates)) (*Monitor, error) {
	type request struct {
		Columns []string `json:"columns,omitempty"`
	}
	reqs := make(map[string]request, len(tables))
	for t, cols := range tables {
		reqs[t] = request{Columns: cols}
	}

	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++ // shares the counter only to get a unique monitor id
	m := &Monitor{c: c, id: "m" + strconv.FormatUint(c.nextID, 10), q: newUpdateQueue()}
	c.monitors[m.id] = m // before the request, so no update is missed
	c.mu.Unlock()
	go m.q.run(fn)

	var decodeErr error
	err := c.call(ctx, "monitor", []any{db, m.id, reqs}, nil, func(raw json.RawMessage) {
		initial, err := parseTableUpdates(raw)
		if err != nil {
			decodeErr = err
			return
		}
		m.q.push(initial)
	})
	if err == nil && decodeErr != nil {
		err = fmt.Errorf("ovsdb: monitor: initial contents: %w", decodeErr)
	}
	if err != nil {
		m.unregister()
		return nil, err
	}
	return m, nil
}

// Cancel stops the monitor; fn is not called after Cancel returns, except
// for a call already in progress.
func (m *Monitor) Cancel(ctx context.Context) error {
	m.unregister()
	err := m.c.call(ctx, "monitor_cancel", []string{m.id}, nil, nil)
	if m.c.Err() != nil {
		return nil // the monitor ended with the connection
	}
	return err
}

func (m *Monitor) unregister() {
	m.c.mu.Lock()
	if m.c.monitors != nil {
		delete(m.c.monitors, m.id)
	}
	m.c.mu.Unlock()
	m.q.close()
}

// updateQueue decouples the reader goroutine from a slow callback: it
// never blocks the reader, at the cost of unbounded buffering.
type updateQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []TableUpdates
	closed bool
}

func newUpdateQueue() *updateQueue {
	q := &updateQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *updateQueue) push(u TableUpdates) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, u)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *updateQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
}

func (q *updateQueue) run(fn func(TableUpdates)) {
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		u := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		fn(u)
	}
}
