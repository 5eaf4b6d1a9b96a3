// Package follow decides when a chute bound to a user's device (the
// manifest's follow) moves to the gateway the device went to. The device
// must be active on that one other gateway, and not on the chute's own,
// for a hold time: a device on the edge of two homes, seen on both or
// hopping between them, does not make the chute flap. Who watches the
// gateways and moves the chute (the fleet controller, or a gateway and
// the peers it trusts) feeds the Tracker and carries out its moves.
package follow

import (
	"maps"
	"slices"
	"time"
)

// Hysteresis is the decision for one chute.
type Hysteresis struct {
	// Hold is how long the device must stay on another gateway.
	Hold time.Duration

	cand  string    // the gateway the device has been seen on alone
	since time.Time // since when
}

// Observe takes where the chute is (home) and the gateways where its
// device is active now, and returns the gateway to move the chute to, or
// "". The device seen at home, or on several other gateways, resets the
// wait; seen nowhere, the wait goes on (an absence is no evidence against
// the new gateway) but nothing moves until it is seen there again. Once
// it returns a move, it starts afresh.
func (h *Hysteresis) Observe(now time.Time, home string, active []string) string {
	switch {
	case slices.Contains(active, home) || len(active) > 1:
		h.cand = ""
		return ""
	case len(active) == 0:
		return ""
	case h.cand != active[0]:
		h.cand, h.since = active[0], now
	}
	if now.Sub(h.since) < h.Hold {
		return ""
	}
	to := h.cand
	h.cand = ""
	return to
}

// Binding is a chute bound to a device, where the chute is.
type Binding struct {
	Chute   string
	Owner   string // "" the operator
	MAC     string
	Gateway string
}

// Move is a chute to move.
type Move struct {
	Binding
	To string
}

// Tracker keeps the hysteresis of every binding.
type Tracker struct {
	hold time.Duration
	by   map[string]*Hysteresis // by gateway and chute
}

// NewTracker makes a tracker with hold time hold.
func NewTracker(hold time.Duration) *Tracker {
	return &Tracker{hold: hold, by: map[string]*Hysteresis{}}
}

// Observe takes the bindings and, by gateway, the MACs active there, and
// returns the moves due. Bindings no longer given are forgotten.
func (t *Tracker) Observe(now time.Time, bindings []Binding, active map[string][]string) []Move {
	where := map[string][]string{} // gateways by active MAC
	for _, gw := range slices.Sorted(maps.Keys(active)) {
		for _, mac := range active[gw] {
			if !slices.Contains(where[mac], gw) {
				where[mac] = append(where[mac], gw)
			}
		}
	}
	seen := make(map[string]bool, len(bindings))
	var moves []Move
	for _, b := range bindings {
		key := b.Gateway + "\x00" + b.Chute
		seen[key] = true
		h := t.by[key]
		if h == nil {
			h = &Hysteresis{Hold: t.hold}
			t.by[key] = h
		}
		if to := h.Observe(now, b.Gateway, where[b.MAC]); to != "" {
			moves = append(moves, Move{Binding: b, To: to})
		}
	}
	for key := range t.by {
		if !seen[key] {
			delete(t.by, key)
		}
	}
	return moves
}
