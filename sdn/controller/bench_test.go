package controller

import (
	"bufio"
	"encoding/binary"
	"io"
	"net/netip"
	"testing"
	"time"

	"paradrop/sdn/ofp"
)

// benchFlows is n distinct flows shaped like the network layer's per-chute
// port forwards, tagged with cookie.
func benchFlows(n int, cookie uint64) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		dst := netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)})
		flows[i] = Flow{Table: 1, Priority: 60, Cookie: cookie, Note: "forward",
			Match: ofp.Match{Fields: []ofp.OXM{
				ofp.FieldInPort.Uint(1), ofp.FieldEthType.Uint(0x0800), ofp.FieldIPProto.Uint(6),
				ofp.FieldIPv4Dst.Addr(dst), ofp.FieldTCPDst.Uint(8000),
				ofp.FieldCtState.Masked(ofp.CtStateTrk|ofp.CtStateNew, ofp.CtStateTrk|ofp.CtStateNew),
			}},
			Instructions: []ofp.Instruction{ofp.ApplyActions(
				&ofp.NXActionCT{Flags: ofp.NXCTFlagCommit, ZoneOfsNbits: 5, RecircTable: ofp.NXCTRecircNone,
					Actions: []ofp.Action{&ofp.NXActionNAT{Flags: ofp.NXNATFlagDst, IPMin: dst, ProtoMin: 80}}},
				&ofp.ActionSetField{Field: ofp.FieldEthDst.MAC(chuteMAC)},
				&ofp.ActionOutput{Port: 2})},
		}
	}
	return flows
}

// BenchmarkEncodeFlowMod measures the controller's cost per flow_mod on
// its two paths: "desired" encodes a flow into canonical form and wire
// bytes (SetDesired, once per flow), "switch" does the same for a flow
// read back from the switch (each reconcile), "write" puts an encoded
// flow_mod into the batch writer with its xid (each flow_mod sent).
func BenchmarkEncodeFlowMod(b *testing.B) {
	f := benchFlows(1, 1<<32)[0]
	b.Run("desired", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := canonical(f.Table, f.Priority, f.Cookie, 0, 0, f.Match, f.Instructions); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("switch", func(b *testing.B) {
		// As decoded from OVS: its field order, the ct_state mask exact.
		m := f.Match
		m.Fields = append([]ofp.OXM{ofp.FieldCtState.Uint(ofp.CtStateTrk | ofp.CtStateNew)}, m.Fields[:5]...)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := canonical(f.Table, f.Priority, f.Cookie, 0, 0, m, f.Instructions); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		e, err := canonical(f.Table, f.Priority, f.Cookie, 0, 0, f.Match, f.Instructions)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(io.Discard, bufSize)
		b.SetBytes(int64(len(e.wire)))
		b.ReportAllocs()
		var x [4]byte
		xid := uint32(0)
		for b.Loop() {
			xid++
			binary.BigEndian.PutUint32(x[:], xid)
			w.Write(e.wire[:4])
			w.Write(x[:])
			w.Write(e.wire[8:])
		}
		w.Flush()
	})
}

// BenchmarkFlowModsToOVS sends benchFlowMods flow_mods into a real OVS
// (root, openvswitch-switch) and reports flow-mods/s. "batch" is the bare
// write of new flows' ADDs confirmed by one barrier; "reconcile" is a Sync
// that changes every flow's cookie, so it also reads the flows back and
// diffs, and its ADDs replace existing entries.
func BenchmarkFlowModsToOVS(b *testing.B) {
	const benchFlowMods = 20000
	e := newOVSEnv(b, Config{Listen: "127.0.0.1:0", EchoTimeout: time.Minute, Logf: func(string, ...any) {}})
	ctx := testCtx(b, 10*time.Minute)
	e.c.SetDesired(benchFlows(benchFlowMods, 0), nil)
	if err := e.c.Sync(ctx); err != nil {
		b.Fatal(err)
	}

	b.Run("batch", func(b *testing.B) {
		s, err := e.c.session(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// Fresh ADDs next to the installed flows (another ct zone makes
		// them distinct), removed again outside the timing.
		const cookie = 0xbe0c4
		flows := benchFlows(benchFlowMods, cookie)
		for i := range flows {
			flows[i].Match.Fields = append(flows[i].Match.Fields, ofp.FieldCtZone.Uint(9))
		}
		d, _ := newDesiredSet(flows, nil)
		msgs := make([][]byte, len(d.order))
		for i, df := range d.order {
			msgs[i] = df.wire
		}
		del, err := (&ofp.FlowMod{Command: ofp.FlowDelete, TableID: ofp.TableAll, Cookie: cookie, CookieMask: ^uint64(0),
			BufferID: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny}).MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		describe := func(int) string { return "bench flow" }
		n := 0
		for b.Loop() {
			if err := s.batch(ctx, msgs, describe); err != nil {
				b.Fatal(err)
			}
			n += len(msgs)
			b.StopTimer()
			if err := s.batch(ctx, [][]byte{del}, describe); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "flowmods/s")
	})
	b.Run("reconcile", func(b *testing.B) {
		n := uint64(0)
		for i := 0; b.Loop(); i++ {
			before := e.c.flowMods.Load()
			e.c.SetDesired(benchFlows(benchFlowMods, uint64(i+2)), nil)
			if err := e.c.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			n += e.c.flowMods.Load() - before
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "flowmods/s")
	})
}
