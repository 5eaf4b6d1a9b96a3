package sdn

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// Rule is a flow as people read it, with the switch's counters.
type Rule struct {
	Chute     string `json:"chute,omitempty"` // "" for the gateway's own rules
	Table     uint8  `json:"table"`
	Priority  uint16 `json:"priority"`
	Cookie    uint64 `json:"cookie"`
	Rule      string `json:"rule"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	Installed bool   `json:"installed"` // the switch holds it
}

// Counters is a chute's traffic as the switch counted it: Tx what the chute
// sent, Rx what was delivered to it, before meters drop anything.
type Counters struct {
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
}

// Flows returns the rules the switch should hold for chute (all of them,
// the gateway's own included, for ""), with their counters.
func (n *Network) Flows(ctx context.Context, chute string) ([]Rule, error) {
	rules, err := n.flows(ctx, chute)
	if err != nil {
		return nil, fmt.Errorf("flows of %q: %w", chute, err)
	}
	return rules, nil
}

func (n *Network) flows(ctx context.Context, chute string) ([]Rule, error) {
	n.mu.Lock()
	d, names := n.last, n.names
	var cookie, mask uint64
	if chute != "" {
		c, ok := n.chutes[chute]
		if !ok {
			n.mu.Unlock()
			return nil, ErrNotAttached
		}
		cookie, mask = uint64(c.id(n.topo.Subnet))<<32, cookieMask
	}
	n.mu.Unlock()
	stats, err := n.ctl.FlowStats(ctx, cookie, mask)
	if err != nil {
		return nil, err
	}
	type count struct{ packets, bytes uint64 }
	counts := map[uint64]count{}
	for _, s := range stats {
		c := counts[s.Cookie]
		counts[s.Cookie] = count{c.packets + s.Packets, c.bytes + s.Bytes}
	}
	var rules []Rule
	for _, f := range d.Flows {
		if f.Cookie&mask != cookie {
			continue
		}
		c, installed := counts[f.Cookie]
		rules = append(rules, Rule{
			Chute: names[uint32(f.Cookie>>32)], Table: f.Table, Priority: f.Priority, Cookie: f.Cookie,
			Rule: f.Note, Packets: c.packets, Bytes: c.bytes, Installed: installed,
		})
	}
	sort.SliceStable(rules, func(i, j int) bool {
		a, b := rules[i], rules[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Priority > b.Priority
	})
	return rules, nil
}

// AllCounters returns every attached chute's traffic counters, by name.
// The usage sampler reads them every second: it asks the switch for each
// chute's totals (AGGREGATE, a few bytes each, all in one write) and dumps
// the flows only of the chutes whose totals moved since the last call,
// all of them in one dump when many did. An idle gateway with its ~40
// flows a chute is no longer made to send, and decode, every flow a
// second.
func (n *Network) AllCounters(ctx context.Context) (map[string]Counters, error) {
	n.mu.Lock()
	ids := make([]uint32, 0, len(n.chutes))
	names := make(map[uint32]string, len(n.chutes))
	for name, c := range n.chutes {
		id := c.id(n.topo.Subnet)
		ids = append(ids, id)
		names[id] = name
	}
	d := n.last
	n.mu.Unlock()
	out := make(map[string]Counters, len(names))
	for _, name := range names {
		out[name] = Counters{}
	}
	if len(names) == 0 || d == nil {
		return out, nil
	}
	cc := &n.counters
	cc.mu.Lock() // one caller at a time: each may refresh the cache
	defer cc.mu.Unlock()
	sessions := n.ctl.Sessions()
	cookies := make([]uint64, len(ids))
	for i, id := range ids {
		cookies[i] = uint64(id) << 32
	}
	aggs, err := n.ctl.Aggregates(ctx, cookies, cookieMask)
	if err != nil {
		return nil, fmt.Errorf("counters: %w", err)
	}
	fresh := make(map[uint32]countedChute, len(ids))
	var moved []int
	for i, id := range ids {
		// Counters only grow while the flows stay the same (same derived
		// set, same switch connection): if their totals did not move,
		// none of them did.
		if e, ok := cc.chutes[id]; ok && e.d == d && e.sessions == sessions && e.agg == aggs[i] {
			fresh[id] = e
			continue
		}
		moved = append(moved, i)
	}
	if len(moved) > 0 {
		// The dumps come after the totals, so a packet counted between
		// them only makes the next call dump again.
		var stats []controller.FlowStat
		if len(moved) > maxChuteDumps {
			if stats, err = n.ctl.FlowStats(ctx, 0, 0); err != nil {
				return nil, fmt.Errorf("counters: %w", err)
			}
			cc.dumps++
		} else {
			for _, i := range moved {
				s, err := n.ctl.FlowStats(ctx, cookies[i], cookieMask)
				if err != nil {
					return nil, fmt.Errorf("counters of %q: %w", names[ids[i]], err)
				}
				stats = append(stats, s...)
				cc.dumps++
			}
		}
		sums := make(map[uint32]Counters, len(moved))
		for _, s := range stats {
			id := uint32(s.Cookie >> 32)
			sums[id] = sums[id].add(d, s)
		}
		for _, i := range moved {
			id := ids[i]
			fresh[id] = countedChute{d: d, sessions: sessions, agg: aggs[i], c: sums[id]}
		}
	}
	cc.chutes = fresh // detached chutes drop out
	for id, e := range fresh {
		out[names[id]] = e.c
	}
	return out, nil
}

// maxChuteDumps is how many chutes' flows AllCounters dumps one by one;
// beyond, one dump of every flow is the cheaper. A variable for tests.
var maxChuteDumps = 4

// counterCache is AllCounters' memory, by chute id.
type counterCache struct {
	mu     sync.Mutex
	chutes map[uint32]countedChute
	dumps  uint64 // flow dumps made, for tests
}

// countedChute is a chute's counters and the totals of its flows they
// were summed with, under derived set d and the switch's connection
// number sessions.
type countedChute struct {
	d        *derived
	sessions uint64
	agg      ofp.AggregateStats
	c        Counters
}

// add counts s in c if it is one of the chute's sending or receiving flows.
func (c Counters) add(d *derived, s controller.FlowStat) Counters {
	if d.TX[s.Cookie] {
		c.TxBytes += s.Bytes
		c.TxPackets += s.Packets
	}
	if d.RX[s.Cookie] {
		c.RxBytes += s.Bytes
		c.RxPackets += s.Packets
	}
	return c
}

// Counters returns chute's traffic counters, from its flows' statistics.
func (n *Network) Counters(ctx context.Context, chute string) (Counters, error) {
	n.mu.Lock()
	c, ok := n.chutes[chute]
	d := n.last
	var id uint32
	if ok {
		id = c.id(n.topo.Subnet)
	}
	n.mu.Unlock()
	if !ok {
		return Counters{}, fmt.Errorf("counters of %q: %w", chute, ErrNotAttached)
	}
	stats, err := n.ctl.FlowStats(ctx, uint64(id)<<32, cookieMask)
	if err != nil {
		return Counters{}, fmt.Errorf("counters of %q: %w", chute, err)
	}
	var cs Counters
	for _, s := range stats {
		cs = cs.add(d, s)
	}
	return cs, nil
}
