package apitest

import (
	"fmt"
	"time"

	"paradrop/chute"
	"paradrop/chute/manifest"
	"paradrop/usage"
)

// SetUsage sets what Usage answers, whatever the window.
func (f *Fake) SetUsage(s usage.Series) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usage = s
}

// Usage implements api.Chutes.
func (f *Fake) Usage(window time.Duration) (usage.Series, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return usage.Series{}, f.Err
	}
	return f.usage, nil
}

// Resources implements api.Chutes: every chute has the manifest's default
// resources.
func (f *Fake) Resources(name string) (manifest.Resources, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return manifest.Resources{}, f.Err
	}
	if _, ok := f.chutes[name]; !ok {
		return manifest.Resources{}, fmt.Errorf("%s: %w", name, chute.ErrNotFound)
	}
	return manifest.Resources{CPUWeight: 100, CPUMax: 1, Memory: 64 << 20, Pids: 64, Disk: 64 << 20, Tmp: 16 << 20}, nil
}

// LastResources returns the last policy request made for name.
func (f *Fake) LastResources(name string) (chute.ResourceRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.requests[name]
	return r, ok
}

// SetResources implements api.Chutes: it records the request and queues a
// "resources" change.
func (f *Fake) SetResources(name string, req chute.ResourceRequest, actor chute.Actor) (chute.Change, error) {
	if err := req.Validate(); err != nil {
		return chute.Change{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return chute.Change{}, f.Err
	}
	if _, err := f.acting(name, actor); err != nil {
		return chute.Change{}, err
	}
	f.requests[name] = req
	return f.queue(name, actor, "resources")
}

// SetPendingPolicy makes req wait for chute name's ack, until acked.
func (f *Fake) SetPendingPolicy(name string, req chute.PolicyRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending[name] = req
}

// PendingPolicy implements api.Chutes.
func (f *Fake) PendingPolicy(name string) (chute.PolicyRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req, ok := f.pending[name]
	return req, ok
}

// AckPolicy implements api.Chutes as the manager does: the request
// waiting, named by its deadline unless that is zero, is taken once.
func (f *Fake) AckPolicy(name string, deadline time.Time) (chute.PolicyRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req, ok := f.pending[name]
	if !ok || !deadline.IsZero() && !deadline.Equal(req.Deadline) {
		return chute.PolicyRequest{}, fmt.Errorf("chute %s: %w", name, chute.ErrNoPolicyRequest)
	}
	delete(f.pending, name)
	f.acks[name]++
	return req, nil
}

// SetHandover makes chute name told it moves, until it acks.
func (f *Fake) SetHandover(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handovers == nil {
		f.handovers = map[string]bool{}
	}
	f.handovers[name] = true
}

// AckHandover implements api.Chutes as the manager does: once, while
// told.
func (f *Fake) AckHandover(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.handovers[name] {
		return fmt.Errorf("chute %s: %w", name, chute.ErrNoHandover)
	}
	delete(f.handovers, name)
	return nil
}

// Acks is how many acks chute name made.
func (f *Fake) Acks(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acks[name]
}
