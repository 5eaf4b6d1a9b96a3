package chute

import (
	"fmt"
	"time"

	"paradrop/chute/manifest"
)

// A chute may answer a resources change in its grace period by saying it
// has complied (the API's POST /api/v1/self/policy/ack, with its token):
// the gateway then need not wait out the grace. It checks the chute's use
// at once and applies the limits, as a backstop if the chute keeps within
// them, by force if not. An ack changes nothing the gateway would not do at
// the deadline anyway; it only brings that moment forward, so a chute gains
// nothing by lying.

// ErrNoPolicyRequest answers an ack when no change is waiting for the
// chute, or a change other than the one acknowledged is (a stale ack); it
// is an ErrConflict.
var ErrNoPolicyRequest error = &kindError{msg: "no such policy request is waiting for the chute", kind: ErrConflict}

// PolicyRequest is a resources change waiting through its grace period for
// the chute to comply: what its policy.json says.
type PolicyRequest struct {
	Resources manifest.Resources `json:"resources"`
	Grace     manifest.Duration  `json:"grace"`
	// Deadline is when the gateway enforces the limits; it names the
	// request (as policy.json's deadline does) in an ack.
	Deadline time.Time `json:"deadline"`
}

// policyAsk is a PolicyRequest being watched by enforce.
type policyAsk struct {
	req PolicyRequest
	// acked receives the time of the chute's ack, once (done, under the
	// manager's mu).
	acked chan time.Time
	done  bool
}

// openAsk makes the chute's request pending until closeAsk.
func (m *Manager) openAsk(name string, want manifest.Resources, doc policyDoc) *policyAsk {
	a := &policyAsk{
		req:   PolicyRequest{Resources: want, Grace: doc.Grace, Deadline: doc.Deadline},
		acked: make(chan time.Time, 1),
	}
	m.mu.Lock()
	m.asks[name] = a
	m.mu.Unlock()
	return a
}

// closeAsk ends the request's grace period: an ack after it is refused.
func (m *Manager) closeAsk(name string, a *policyAsk) {
	m.mu.Lock()
	if m.asks[name] == a {
		delete(m.asks, name)
	}
	m.mu.Unlock()
}

// PendingPolicy is the request waiting for the chute to comply, if any.
func (m *Manager) PendingPolicy(name string) (PolicyRequest, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.asks[name]
	if !ok {
		return PolicyRequest{}, false
	}
	return a.req, true
}

// AckPolicy is the chute's word that it complies with the request waiting
// for it, the one whose deadline is deadline (any, if zero): the change
// stops waiting and judges the chute at once. It fails with
// ErrNoPolicyRequest when no such request waits, or it was acknowledged
// already.
func (m *Manager) AckPolicy(name string, deadline time.Time) (PolicyRequest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.asks[name]
	switch {
	case !ok:
		return PolicyRequest{}, fmt.Errorf("chute %s: %w", name, ErrNoPolicyRequest)
	case !deadline.IsZero() && !deadline.Equal(a.req.Deadline):
		return PolicyRequest{}, fmt.Errorf("chute %s: the request waiting has deadline %s, not %s: %w",
			name, a.req.Deadline.Format(time.RFC3339Nano), deadline.UTC().Format(time.RFC3339Nano), ErrNoPolicyRequest)
	case a.done:
		return PolicyRequest{}, fmt.Errorf("chute %s: acknowledged already: %w", name, ErrNoPolicyRequest)
	}
	a.done = true
	a.acked <- time.Now() // its room of one is for this send alone
	return a.req, nil
}
