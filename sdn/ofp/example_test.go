package ofp_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"paradrop/sdn/ofp"
)

// A controller's typical writes: a DNAT flow through conntrack, a meter,
// and reading the switch's answer from the connection.
func Example() {
	chuteMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	fm := ofp.NewFlowMod(1, 60, ofp.Match{Fields: []ofp.OXM{
		ofp.FieldInPort.Uint(1),
		ofp.FieldEthType.Uint(0x0800),
		ofp.FieldIPProto.Uint(6),
		ofp.FieldIPv4Dst.Addr(netip.MustParseAddr("10.77.0.99")),
		ofp.FieldTCPDst.Uint(8001),
		ofp.FieldCtState.Masked(ofp.CtStateTrk|ofp.CtStateNew, ofp.CtStateTrk|ofp.CtStateNew),
	}},
		&ofp.InstructionMeter{MeterID: 1},
		ofp.ApplyActions(
			&ofp.NXActionCT{Flags: ofp.NXCTFlagCommit, ZoneOfsNbits: 5, RecircTable: ofp.NXCTRecircNone,
				Actions: []ofp.Action{&ofp.NXActionNAT{Flags: ofp.NXNATFlagDst,
					IPMin: netip.MustParseAddr("10.77.0.11"), ProtoMin: 80}}},
			&ofp.ActionSetField{Field: ofp.FieldEthDst.MAC(chuteMAC)},
			&ofp.ActionOutput{Port: 2},
		))
	fm.Xid = 1
	meter := &ofp.MeterMod{Command: ofp.MeterAdd, Flags: ofp.MeterFlagKbps, MeterID: 1,
		Bands: []ofp.MeterBand{&ofp.MeterBandDrop{Rate: 10000}}}

	var conn bytes.Buffer // stands in for the net.Conn to the bridge
	for _, m := range []ofp.Message{meter, fm, &ofp.BarrierRequest{Header: ofp.Header{Xid: 2}}} {
		b, err := m.MarshalBinary()
		if err != nil {
			panic(err)
		}
		conn.Write(b)
	}

	for {
		m, err := ofp.ReadMessage(&conn)
		if err != nil {
			break // io.EOF at a message boundary, or a *ofp.DecodeError
		}
		switch m := m.(type) {
		case *ofp.FlowMod:
			fmt.Println("flow_mod xid", m.Xid, "priority", m.Priority, "instructions", len(m.Instructions))
		case *ofp.MeterMod:
			fmt.Println("meter_mod", m.MeterID)
		case *ofp.BarrierRequest:
			fmt.Println("barrier xid", m.Xid)
		}
	}
	// Output:
	// meter_mod 1
	// flow_mod xid 1 priority 60 instructions 2
	// barrier xid 2
}
