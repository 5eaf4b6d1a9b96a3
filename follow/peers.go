package follow

import (
	"context"
	"time"
)

// Peer is another gateway this one trusts, as follow-me between peers
// needs it: the MACs active there, and a way to move a chute there.
type Peer struct {
	// Name names it in the moves and the log (its URL).
	Name        string
	ActiveHosts func(ctx context.Context) ([]string, error)
	Move        func(ctx context.Context, b Binding) error
}

// Peers runs follow-me between this gateway and the peers it trusts,
// without a fleet controller: every Poll it asks each peer for its active
// LAN devices and moves a bound chute to the peer its device stayed on
// for Hold. Only the gateway that holds a chute moves it, so two peers
// that list each other never both move one.
type Peers struct {
	Hold, Poll time.Duration
	// Local returns this gateway's chutes that may move now (Gateway "")
	// and the MACs active on its LAN.
	Local func() ([]Binding, []string)
	Peers []Peer
	Logf  func(format string, args ...any)

	tracker *Tracker
}

// Run polls until ctx ends.
func (p *Peers) Run(ctx context.Context) { Loop(ctx, p.Poll, p.Round) }

// Loop calls round every period, with the tick's time, until ctx ends:
// follow-me's poll, between peers (Peers.Run) or from a fleet controller.
func Loop(ctx context.Context, every time.Duration, round func(context.Context, time.Time) []Move) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			round(ctx, now)
		}
	}
}

// Round looks once, at now, and starts the moves due; it returns them.
func (p *Peers) Round(ctx context.Context, now time.Time) []Move {
	if p.tracker == nil {
		p.tracker = NewTracker(p.Hold)
	}
	bindings, local := p.Local()
	active := map[string][]string{"": local}
	byName := make(map[string]Peer, len(p.Peers))
	for _, peer := range p.Peers {
		byName[peer.Name] = peer
		if len(bindings) == 0 {
			continue // nothing to move: no need to ask
		}
		pctx, cancel := context.WithTimeout(ctx, p.Poll)
		macs, err := peer.ActiveHosts(pctx)
		cancel()
		if err != nil {
			// Not seen there, then: nothing moves to a peer that does
			// not answer.
			p.Logf("follow: peer %s: %v", peer.Name, err)
			continue
		}
		active[peer.Name] = macs
	}
	moves := p.tracker.Observe(now, bindings, active)
	for _, m := range moves {
		p.Logf("follow: %s's device %s stayed on %s for %v: moving it there", m.Chute, m.MAC, m.To, p.Hold)
		if err := byName[m.To].Move(ctx, m.Binding); err != nil {
			p.Logf("follow: moving %s to %s: %v", m.Chute, m.To, err)
		}
	}
	return moves
}
