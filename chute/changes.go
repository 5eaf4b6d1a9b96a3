package chute

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"paradrop/store"
)

// maxChanges bounds the change history kept in the store.
const maxChanges = 1000

// job is one unit of work on a chute's queue. Jobs of one chute run one at
// a time in order; jobs of different chutes run in parallel.
type job struct {
	change *Change // nil for internal work (a supervised restart)
	run    func(ctx context.Context, p *progress) error
}

// progress records a change's steps as they happen.
type progress struct {
	m  *Manager
	ch *Change
}

// step adds a line to the change's progress (or to the daemon's log for
// internal jobs).
func (p *progress) step(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.ch == nil {
		p.m.logf("%s", msg)
		return
	}
	p.m.updateChange(p.ch.ID, func(c *Change) {
		c.Steps = append(c.Steps, Step{Time: time.Now().UTC(), Message: msg})
	})
}

// newChange records a queued change of a chute of owner, asked by actor.
func (m *Manager) newChange(name string, owner Owner, actor Actor, action string) (*Change, error) {
	c := &Change{Chute: name, Owner: owner, Actor: actor, Action: action, State: Queued, Created: time.Now().UTC(), Steps: []Step{}}
	err := m.db.Update(func(tx *store.Tx) error {
		id, err := tx.NextID(store.Changes)
		if err != nil {
			return err
		}
		c.ID = id
		if err := tx.Put(store.Changes, store.IDKey(id), c); err != nil {
			return err
		}
		_, err = tx.Prune(store.Changes, func(k string) bool { return id < maxChanges || k > store.IDKey(id-maxChanges) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record change: %w", err)
	}
	m.mu.Lock()
	m.changes[c.ID] = c
	m.mu.Unlock()
	return c, nil
}

// updateChange applies fn to a live change and wakes waiters; a change
// that ended is persisted first.
//
// A running change's state and steps live in the live map only, where
// Change, Changes and WaitChange read them: the store holds the change as
// it was queued (newChange) and as it ended. A commit costs two
// fdatasyncs (0.3-0.5 ms idle, 3-14 ms p90 under load), and a start's
// progress made three of them, two before the chute's command ran. A
// daemon that dies mid-change loses only that change's steps:
// settleInterrupted ends it from its queued copy.
func (m *Manager) updateChange(id uint64, fn func(*Change)) {
	m.mu.Lock()
	c, ok := m.changes[id]
	if !ok {
		m.mu.Unlock()
		return
	}
	fn(c)
	snap := cloneChange(c)
	m.mu.Unlock()
	// Persist before waiters are woken: once a change leaves the live map,
	// the store is where they read it.
	if snap.Done() {
		if err := m.db.Put(store.Changes, store.IDKey(id), snap); err != nil {
			m.logf("persist change %d: %v", id, err)
		}
	}
	m.mu.Lock()
	if snap.Done() {
		delete(m.changes, id)
	}
	m.changeCond.Broadcast()
	watchers := m.watchers
	m.mu.Unlock()
	if snap.Done() {
		for _, fn := range watchers {
			fn(snap)
		}
	}
}

// OnChangeEnd has fn called with every change that ends from now on,
// whoever asked for it, on the goroutine that ended it: fn must not block.
// The USP agent tells its controllers of installs made through the API.
func (m *Manager) OnChangeEnd(fn func(Change)) {
	m.mu.Lock()
	m.watchers = append(slices.Clip(m.watchers), fn)
	m.mu.Unlock()
}

func cloneChange(c *Change) Change {
	out := *c
	out.Steps = append([]Step(nil), c.Steps...)
	return out
}

// enqueue puts a job on the chute's queue, starting its worker if idle.
func (m *Manager) enqueue(name string, j job) {
	// A restart timer that fires after the manager stopped must not start
	// a chute under a closing store: the next daemon's recovery does it.
	if j.change == nil && m.ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queues[name] = append(m.queues[name], j)
	if len(m.queues[name]) == 1 {
		m.wg.Add(1)
		go m.work(name)
	}
}

func (m *Manager) work(name string) {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		q := m.queues[name]
		if len(q) == 0 {
			delete(m.queues, name)
			m.mu.Unlock()
			return
		}
		j := q[0]
		m.mu.Unlock()

		m.runJob(j)

		m.mu.Lock()
		m.queues[name] = m.queues[name][1:]
		m.mu.Unlock()
	}
}

func (m *Manager) runJob(j job) {
	p := &progress{m: m, ch: j.change}
	if j.change != nil {
		m.updateChange(j.change.ID, func(c *Change) { c.State = ChangeRun })
	}
	err := j.run(m.ctx, p)
	if j.change == nil {
		if err != nil {
			m.logf("%v", err)
		}
		return
	}
	m.updateChange(j.change.ID, func(c *Change) {
		now := time.Now().UTC()
		c.Ended = &now
		if err != nil {
			c.State = ChangeError
			c.Error = err.Error()
			return
		}
		c.State = ChangeDone
	})
}

// Changes lists recent changes, oldest first.
func (m *Manager) Changes() []Change {
	var out []Change
	err := m.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Changes, func(k string, _ []byte) error {
			var c Change
			if err := tx.Get(store.Changes, k, &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		m.logf("list changes: %v", err)
	}
	m.mu.Lock()
	for i, c := range out {
		if live, ok := m.changes[c.ID]; ok {
			out[i] = cloneChange(live)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Change returns one change.
func (m *Manager) Change(id uint64) (Change, error) {
	m.mu.Lock()
	if c, ok := m.changes[id]; ok {
		defer m.mu.Unlock()
		return cloneChange(c), nil
	}
	m.mu.Unlock()
	var c Change
	if err := m.db.Get(store.Changes, store.IDKey(id), &c); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c, fmt.Errorf("change %d: %w", id, ErrNoChange)
		}
		return c, err
	}
	return c, nil
}

// WaitChange blocks until the change ends or ctx does.
func (m *Manager) WaitChange(ctx context.Context, id uint64) (Change, error) {
	stop := context.AfterFunc(ctx, func() {
		m.mu.Lock()
		m.changeCond.Broadcast()
		m.mu.Unlock()
	})
	defer stop()
	m.mu.Lock()
	for {
		c, live := m.changes[id]
		if !live {
			m.mu.Unlock()
			return m.Change(id)
		}
		if ctx.Err() != nil {
			snap := cloneChange(c)
			m.mu.Unlock()
			return snap, ctx.Err()
		}
		m.changeCond.Wait()
	}
}

// settleInterrupted ends the changes a previous daemon left unfinished:
// their work died with it, and recovery puts the chutes back in a whole
// state. An install that had committed (the chute's record exists) is not
// failed: it is resumed by the chute's recovery, returned here by chute,
// whose outcome is the install's. The others fail, saying so.
func (m *Manager) settleInterrupted() (map[string]*Change, error) {
	resumed := map[string]*Change{}
	err := m.db.Update(func(tx *store.Tx) error {
		var open []Change
		err := tx.ForEach(store.Changes, func(k string, raw []byte) error {
			var c Change
			if err := tx.Get(store.Changes, k, &c); err != nil {
				return err
			}
			if !c.Done() {
				open = append(open, c)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range open {
			now := time.Now().UTC()
			_, installed := m.chutes[c.Chute]
			switch {
			case c.Action == "install" && installed && resumed[c.Chute] == nil:
				c.State = ChangeRun
				c.Steps = append(c.Steps, Step{Time: now, Message: "daemon restarted after the install committed: recovering the chute"})
				resumed[c.Chute] = &c
			case c.Action == "install":
				c.State, c.Error, c.Ended = ChangeError, "interrupted by a daemon restart before it committed: nothing installed", &now
			default:
				c.State, c.Error, c.Ended = ChangeError, "interrupted by a daemon restart", &now
			}
			if err := tx.Put(store.Changes, store.IDKey(c.ID), &c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	for _, c := range resumed {
		m.changes[c.ID] = c
	}
	m.mu.Unlock()
	return resumed, nil
}
