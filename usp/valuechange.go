package usp

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"paradrop/usp/codec"
)

// watch looks at the parameters ValueChange subscriptions name every
// Config.Poll until ctx ends, and tells each subscriber of those changed.
func (a *Agent) watch(ctx context.Context) {
	tick := time.NewTicker(a.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.valueChanges()
		}
	}
}

// valueChanges compares the values each enabled ValueChange subscription
// names with those it saw last; the first look only records them.
func (a *Agent) valueChanges() {
	subs := a.subs.valueChange()
	snaps := map[string]*snapshot{} // one per subscriber
	for _, s := range subs {
		snap, ok := snaps[s.from]
		if !ok {
			snap = a.snapshot(s.from, a.cfg.Controllers[s.from])
			snaps[s.from] = snap
		}
		now := watched(s.refs, snap)
		if s.last != nil {
			for _, path := range slices.Sorted(maps.Keys(now)) {
				if old, ok := s.last[path]; ok && old != now[path] {
					a.queue(s.from, &codec.Notify{SubscriptionId: s.id, SendResp: s.retry,
						Notification: &codec.Notify_ValueChange_{ValueChange: &codec.Notify_ValueChange{ParamPath: path, ParamValue: now[path]}}})
				}
			}
		}
		a.subs.saw(s, now)
	}
}

// watched are the values of the parameters refs name that a ValueChange
// may follow, by their full path.
func watched(refs []string, snap *snapshot) map[string]string {
	out := map[string]string{}
	for _, r := range refs {
		res, perr := resolveGet(r, 0, snap)
		if perr != nil {
			continue
		}
		for _, rp := range res {
			o := findObject(supportedPath(strings.Split(strings.TrimSuffix(rp.ResolvedPath, "."), ".")))
			for name, v := range rp.ResultParams {
				if o != nil {
					if p, ok := o.param(name); ok && p.noValueChange {
						continue
					}
				}
				out[rp.ResolvedPath+name] = v
			}
		}
	}
	return out
}
