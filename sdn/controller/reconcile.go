package controller

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"paradrop/sdn/ofp"
)

// Flows are compared in a canonical form, because OVS answers a flow dump
// with its own rendering of what we sent: match fields in its order, masks
// that are all ones turned into exact matches, fields with an all-zero
// mask dropped, value bits outside the mask cleared, and instructions in
// execution order with empty action lists gone. Both the desired flows
// and the switch's flows are put in that form and encoded with the same
// codec; the bytes are compared.

// encoded is a flow in canonical form: its FLOW_MOD ADD with xid 0,
// canonical match and instructions. Its key (table, priority and match:
// what identifies a flow entry) and its content (cookie, timeouts and
// instructions) are read from those bytes rather than kept beside them,
// which for a desired set doubled what it held.
type encoded struct {
	wire []byte
	end  int // where the match ends, padding included: the instructions follow
}

// key is what identifies e's flow entry: its table, priority and match.
func (e encoded) key() string {
	return string(e.wire[offTable:offTable+1]) + string(e.wire[offPriority:offPriority+2]) + string(e.wire[offMatch:e.end])
}

// sameContent reports whether e and o have the same cookie, timeouts and
// instructions.
func (e encoded) sameContent(o encoded) bool {
	return bytes.Equal(e.wire[offCookie:offCookie+8], o.wire[offCookie:offCookie+8]) &&
		bytes.Equal(e.wire[offTimeouts:offTimeouts+4], o.wire[offTimeouts:offTimeouts+4]) &&
		bytes.Equal(e.wire[e.end:], o.wire[o.end:])
}

// Offsets in an encoded FLOW_MOD (ofp_flow_mod).
const (
	offCookie   = 8
	offTable    = 24
	offTimeouts = 26 // idle then hard timeout
	offPriority = 30
	offMatch    = 48
)

func canonical(table uint8, priority uint16, cookie uint64, idle, hard uint16, m ofp.Match, is []ofp.Instruction) (encoded, error) {
	fm := ofp.FlowMod{
		Cookie: cookie, TableID: table, Command: ofp.FlowAdd,
		IdleTimeout: idle, HardTimeout: hard, Priority: priority,
		BufferID: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: canonicalMatch(m), Instructions: canonicalInstructions(is),
	}
	b, err := fm.MarshalBinary()
	if err != nil {
		return encoded{}, err
	}
	mlen := int(binary.BigEndian.Uint16(b[offMatch+2:]))
	return encoded{wire: b, end: offMatch + (mlen+7)&^7}, nil
}

// flowKey is the key of canonical for a flow known by its parts.
func flowKey(table uint8, priority uint16, m ofp.Match) string {
	e, err := canonical(table, priority, 0, 0, 0, m, nil)
	if err != nil {
		return ""
	}
	return e.key()
}

// classRank orders OXM classes so that sorting by (rank, field) keeps
// every prerequisite before the fields needing it: OpenFlow basic fields
// need only lower-numbered basic fields, and Nicira fields come after.
func classRank(c uint16) int {
	switch c {
	case ofp.ClassOpenFlowBasic:
		return 0
	case ofp.ClassNXM0:
		return 1
	case ofp.ClassNXM1:
		return 2
	}
	return 3
}

func compareOXM(a, b ofp.OXM) int {
	return cmp.Or(
		cmp.Compare(classRank(a.ID.Class), classRank(b.ID.Class)),
		cmp.Compare(a.ID.Field, b.ID.Field),
		cmp.Compare(a.Experimenter, b.Experimenter),
	)
}

// normalOXM returns f as OVS renders it and whether it matches anything
// at all. It allocates only when value bits must be cleared.
func normalOXM(f ofp.OXM) (ofp.OXM, bool) {
	if f.Mask == nil || f.ID.Class == ofp.ClassExperimenter || len(f.Mask) != len(f.Value) {
		return f, true
	}
	ones, zero, outside := true, true, false
	for i, m := range f.Mask {
		ones = ones && m == 0xff
		zero = zero && m == 0
		outside = outside || f.Value[i]&^m != 0
	}
	switch {
	case zero:
		return f, false
	case ones:
		f.Mask = nil
	case outside:
		v := make([]byte, len(f.Value))
		for i := range v {
			v[i] = f.Value[i] & f.Mask[i]
		}
		f.Value = v
	}
	return f, true
}

// canonicalMatch returns m in canonical form, m itself (no allocation)
// when it already is.
func canonicalMatch(m ofp.Match) ofp.Match {
	same := true
	for i, f := range m.Fields {
		g, ok := normalOXM(f)
		if !ok || !bytes.Equal(g.Value, f.Value) || (g.Mask == nil) != (f.Mask == nil) ||
			(i > 0 && compareOXM(m.Fields[i-1], f) > 0) {
			same = false
			break
		}
	}
	if same {
		return m
	}
	fields := make([]ofp.OXM, 0, len(m.Fields))
	for _, f := range m.Fields {
		if g, ok := normalOXM(f); ok {
			fields = append(fields, g)
		}
	}
	slices.SortStableFunc(fields, compareOXM)
	return ofp.Match{Fields: fields}
}

// instructionRank is OVS's (and the spec's execution) order of
// instructions; OVS keeps at most one of each type.
func instructionRank(i ofp.Instruction) int {
	switch i := i.(type) {
	case *ofp.InstructionMeter:
		return 0
	case *ofp.InstructionActions:
		switch i.Type {
		case ofp.InstructionTypeApplyActions:
			return 1
		case ofp.InstructionTypeClearActions:
			return 2
		}
		return 3
	case *ofp.InstructionWriteMetadata:
		return 4
	case *ofp.InstructionGotoTable:
		return 5
	}
	return 6
}

// emptyActions is an apply- or write-actions with no action, which OVS
// does not keep.
func emptyActions(i ofp.Instruction) bool {
	a, ok := i.(*ofp.InstructionActions)
	return ok && a.Type != ofp.InstructionTypeClearActions && len(a.Actions) == 0
}

func canonicalInstructions(is []ofp.Instruction) []ofp.Instruction {
	same := true
	for i, in := range is {
		if emptyActions(in) || (i > 0 && instructionRank(is[i-1]) > instructionRank(in)) {
			same = false
			break
		}
	}
	if same {
		return is
	}
	out := make([]ofp.Instruction, 0, len(is))
	for _, in := range is {
		if !emptyActions(in) {
			out = append(out, in)
		}
	}
	slices.SortStableFunc(out, func(a, b ofp.Instruction) int {
		return cmp.Compare(instructionRank(a), instructionRank(b))
	})
	return out
}

// desiredFlow is a desired flow's canonical encoding, with what names it
// to operators. Its match and instructions are held once, encoded: the
// Flow's own (slices of OXMs, actions) are left to its caller, who need
// not keep them (0.5 MB of 30 chutes' flows).
type desiredFlow struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	Note     string
	encoded
}

// desiredSet is what SetDesired was given, ready for reconciles; it is
// never modified once built.
type desiredSet struct {
	flows  map[string]*desiredFlow // by key
	order  []*desiredFlow          // SetDesired's order, duplicates removed
	meters map[uint32]*ofp.MeterMod
	err    error // a flow that could not be encoded
	// gen numbers the sets SetDesired made, from 1, so that a reconcile
	// can tell that an earlier one converged to this set or a newer one.
	gen uint64
}

func newDesiredSet(flows []Flow, meters []Meter) (*desiredSet, error) {
	d := &desiredSet{
		flows:  make(map[string]*desiredFlow, len(flows)),
		order:  make([]*desiredFlow, 0, len(flows)),
		meters: make(map[uint32]*ofp.MeterMod, len(meters)),
	}
	all := make([]desiredFlow, len(flows)) // one allocation for every flow
	for i, f := range flows {
		e, err := canonical(f.Table, f.Priority, f.Cookie, 0, 0, f.Match, f.Instructions)
		if err != nil {
			d.err = fmt.Errorf("flow table=%d priority=%d %q: %w", f.Table, f.Priority, f.Note, err)
			return d, d.err
		}
		df := &all[i]
		*df = desiredFlow{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Note: f.Note, encoded: e}
		k := e.key()
		if old := d.flows[k]; old != nil {
			*old = *df // the last one wins, in the first one's place
			continue
		}
		d.flows[k] = df
		d.order = append(d.order, df)
	}
	for _, m := range meters {
		d.meters[m.ID] = meterMod(m)
	}
	return d, nil
}

// same reports whether d and o ask the same of the switch, with the same
// notes: the same flows, encoded alike, and the same meters.
func (d *desiredSet) same(o *desiredSet) bool {
	if d.err != nil || o.err != nil || len(d.order) != len(o.order) || !maps.EqualFunc(d.meters, o.meters, sameMeterMod) {
		return false
	}
	for k, df := range d.flows {
		of := o.flows[k]
		if of == nil || of.Note != df.Note || !bytes.Equal(of.wire, df.wire) {
			return false
		}
	}
	return true
}

func sameMeterMod(a, b *ofp.MeterMod) bool { return reflect.DeepEqual(a, b) }

// meterMod is the METER_MOD ADD for m.
func meterMod(m Meter) *ofp.MeterMod {
	mm := &ofp.MeterMod{Command: ofp.MeterAdd, Flags: ofp.MeterFlagKbps | ofp.MeterFlagStats, MeterID: m.ID,
		Bands: []ofp.MeterBand{&ofp.MeterBandDrop{Rate: m.RateKbps, BurstSize: m.BurstKb}}}
	if m.BurstKb > 0 {
		mm.Flags |= ofp.MeterFlagBurst
	}
	return mm
}

// sameMeter compares a desired meter with the switch's. Without the BURST
// flag the band's burst size means nothing, and OVS reports its own
// (the rate).
func sameMeter(want *ofp.MeterMod, have *ofp.MeterConfig) bool {
	if want.Flags != have.Flags || len(have.Bands) != 1 {
		return false
	}
	hb, ok := have.Bands[0].(*ofp.MeterBandDrop)
	wb := want.Bands[0].(*ofp.MeterBandDrop)
	if !ok || hb.Rate != wb.Rate {
		return false
	}
	return want.Flags&ofp.MeterFlagBurst == 0 || hb.BurstSize == wb.BurstSize
}

// plan is the batch that turns the switch's state into d: meters added or
// changed first (flows may use them), then foreign flows deleted, missing
// or changed flows added (an ADD replaces the entry with the same match
// and priority), and unwanted meters deleted last (deleting a meter
// deletes the flows using it).
type plan struct {
	msgs     [][]byte
	items    []planItem // what msgs[i] does, for error messages
	flowMods int
}

// planItem describes one message of a plan; the text is only built for
// the few the switch refuses.
type planItem struct {
	verb     string
	df       *desiredFlow // flows we send
	table    uint8        // foreign flows
	priority uint16
	meter    uint32 // meter mods
}

func (it planItem) String() string {
	switch {
	case it.df != nil:
		return fmt.Sprintf("%s flow table=%d priority=%d %q", it.verb, it.df.Table, it.df.Priority, it.df.Note)
	case it.verb == "delete foreign":
		return fmt.Sprintf("%s flow table=%d priority=%d", it.verb, it.table, it.priority)
	}
	return fmt.Sprintf("%s meter %d", it.verb, it.meter)
}

func (p *plan) add(b []byte, it planItem) {
	p.msgs = append(p.msgs, b)
	p.items = append(p.items, it)
	if it.meter == 0 {
		p.flowMods++
	}
}

func (p *plan) addMsg(m ofp.Message, it planItem) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("%v: %w", it, err)
	}
	p.add(b, it)
	return nil
}

func makePlan(d *desiredSet, flows []ofp.FlowStats, meters []ofp.MeterConfig) (*plan, error) {
	p := &plan{}
	haveMeter := map[uint32]bool{}
	for i := range meters {
		have := &meters[i]
		haveMeter[have.MeterID] = true
		want := d.meters[have.MeterID]
		if want == nil || sameMeter(want, have) {
			continue
		}
		mod := *want
		mod.Command = ofp.MeterModify
		if err := p.addMsg(&mod, planItem{verb: "modify", meter: want.MeterID}); err != nil {
			return nil, err
		}
	}
	for id, want := range d.meters {
		if !haveMeter[id] {
			if err := p.addMsg(want, planItem{verb: "add", meter: id}); err != nil {
				return nil, err
			}
		}
	}

	seen := make(map[*desiredFlow]bool, len(d.order))
	for i := range flows {
		f := &flows[i]
		e, err := canonical(f.TableID, f.Priority, f.Cookie, f.IdleTimeout, f.HardTimeout, f.Match, f.Instructions)
		if err != nil {
			return nil, fmt.Errorf("switch flow table=%d priority=%d: %w", f.TableID, f.Priority, err)
		}
		if df := d.flows[e.key()]; df != nil {
			seen[df] = true
			if !df.sameContent(e) {
				p.add(df.wire, planItem{verb: "replace", df: df})
			}
			continue
		}
		del := &ofp.FlowMod{
			Command: ofp.FlowDeleteStrict, TableID: f.TableID, Priority: f.Priority,
			BufferID: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: f.Match,
		}
		if err := p.addMsg(del, planItem{verb: "delete foreign", table: f.TableID, priority: f.Priority}); err != nil {
			return nil, err
		}
	}
	for _, df := range d.order {
		if !seen[df] {
			p.add(df.wire, planItem{verb: "add", df: df})
		}
	}

	for i := range meters {
		if id := meters[i].MeterID; d.meters[id] == nil {
			if err := p.addMsg(&ofp.MeterMod{Command: ofp.MeterDelete, MeterID: id}, planItem{verb: "delete", meter: id}); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// reconcile converges the switch to the desired set in one batch
// confirmed by a barrier. A triggered reconcile (SetDesired's) does
// nothing if one on this session already converged to the current
// desired set or a newer one: that one read the switch after the set was
// made, so after the trigger.
func (s *session) reconcile(ctx context.Context, triggered bool) error {
	select {
	case s.recSem <- struct{}{}:
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-s.recSem }()
	// Taken in turn, so that generations confirm in order.
	d := s.c.desiredSet()
	if d.err != nil {
		return d.err
	}
	if triggered && s.confirmed >= d.gen {
		s.c.skipped.Add(1)
		return nil
	}

	s.c.readBacks.Add(1)
	flows, err := s.flowStats(ctx, 0, 0)
	if err != nil {
		return err
	}
	meters, err := s.meters(ctx)
	if err != nil {
		return err
	}
	p, err := makePlan(d, flows, meters)
	if err != nil {
		return err
	}
	if len(p.msgs) == 0 {
		// The replies to the reads follow everything sent before them,
		// so the switch held d: as good as a barrier.
		s.confirmed = d.gen
		return nil
	}
	s.c.flowMods.Add(uint64(p.flowMods))
	s.c.meterMods.Add(uint64(len(p.msgs) - p.flowMods))
	s.c.cfg.Logf("controller: reconcile: %d flow_mods, %d meter_mods (switch had %d flows, %d desired)",
		p.flowMods, len(p.msgs)-p.flowMods, len(flows), len(d.order))
	if err := s.batch(ctx, p.msgs, func(i int) string { return p.items[i].String() }); err != nil {
		return err
	}
	s.confirmed = d.gen
	return nil
}
