package sdn

import (
	"context"
	"fmt"
	"sort"

	"paradrop/sdn/controller"
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

// AllCounters returns every attached chute's traffic counters, by name,
// from one request for the switch's flow statistics: the usage sampler
// reads them every second, and a request a chute cost the daemon and Open
// vSwitch a round trip each.
func (n *Network) AllCounters(ctx context.Context) (map[string]Counters, error) {
	n.mu.Lock()
	names := make(map[uint32]string, len(n.chutes))
	for name, c := range n.chutes {
		names[c.id(n.topo.Subnet)] = name
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
	stats, err := n.ctl.FlowStats(ctx, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("counters: %w", err)
	}
	for _, s := range stats {
		name, ok := names[uint32(s.Cookie>>32)]
		if !ok {
			continue
		}
		out[name] = out[name].add(d, s)
	}
	return out, nil
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
