package ofp

import (
	"encoding/hex"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// TestOVSDecodesOurEncoding feeds messages we encode to Open vSwitch's own
// decoder (ovs-ofctl ofp-print) and checks it reads what we meant.
func TestOVSDecodesOurEncoding(t *testing.T) {
	ofctl, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		t.Fatal("ovs-ofctl not found; install openvswitch-switch (see Makefile DEBS)")
	}
	lan := netip.MustParseAddr("10.77.0.99")
	chuteMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}

	natFlow := NewFlowMod(1, 60, Match{Fields: []OXM{
		FieldInPort.Uint(1),
		FieldEthType.Uint(0x0800),
		FieldIPProto.Uint(6),
		FieldIPv4Dst.Addr(lan),
		FieldTCPDst.Uint(8001),
		FieldCtState.Masked(CtStateTrk|CtStateNew, CtStateTrk|CtStateNew),
	}}, ApplyActions(
		&NXActionCT{Flags: NXCTFlagCommit, ZoneOfsNbits: 5, RecircTable: NXCTRecircNone, Actions: []Action{
			&NXActionNAT{Flags: NXNATFlagDst, IPMin: netip.MustParseAddr("10.77.0.11"), ProtoMin: 80},
		}},
		&ActionSetField{Field: FieldEthDst.MAC(chuteMAC)},
		&ActionOutput{Port: 2},
	))
	natFlow.Xid = 7

	tests := []struct {
		name string
		msg  Message
		want []string
	}{
		{"flow_mod ct commit nat", natFlow, []string{
			"OFPT_FLOW_MOD (OF1.3) (xid=0x7): ADD table:1 priority=60",
			"ct_state=+new+trk", "tcp", "in_port=1", "nw_dst=10.77.0.99", "tp_dst=8001",
			"actions=ct(commit,zone=5,nat(dst=10.77.0.11:80)),set_field:02:00:00:00:00:11->eth_dst,output:2",
		}},
		{"flow_mod ct recirculate, masks, goto, write, meter", NewFlowMod(0, 50, Match{Fields: []OXM{
			FieldEthType.Uint(0x0800),
			FieldCtState.Masked(0, CtStateTrk),
			FieldCtZone.Uint(5),
			FieldCtMark.Masked(0x3, 0xf),
			FieldReg(0).Uint(7),
			FieldIPv4Src.Prefix(netip.MustParsePrefix("10.77.0.0/24")),
			FieldEthSrc.MAC(net.HardwareAddr{2, 0, 0, 0, 0, 0}, net.HardwareAddr{0xff, 0xff, 0, 0, 0, 0}),
			FieldMetadata.Masked(0x10, 0xf0),
		}},
			&InstructionMeter{MeterID: 3},
			ApplyActions(&NXActionCT{ZoneOfsNbits: 5, RecircTable: 1, Actions: []Action{&NXActionNAT{}}}),
			WriteActions(&ActionGroup{GroupID: 9}),
			&InstructionWriteMetadata{Metadata: 0x20, MetadataMask: 0xf0},
			&InstructionGotoTable{TableID: 2},
		), []string{
			"ADD priority=50",
			"ct_state=-trk", "ct_zone=5", "ct_mark=0x3/0xf", "reg0=0x7",
			"nw_src=10.77.0.0/24", "dl_src=02:00:00:00:00:00/ff:ff:00:00:00:00", "metadata=0x10/0xf0",
			"meter:3", "ct(table=1,zone=5,nat)", "write_actions(group:9)",
			"write_metadata:0x20/0xf0", "goto_table:2",
		}},
		{"flow_mod ct zone from register, resubmit", NewFlowMod(0, 10, Match{Fields: []OXM{FieldEthType.Uint(0x0800)}},
			ApplyActions(
				&NXActionCT{Flags: NXCTFlagCommit, ZoneSrc: NXMHeader(FieldReg(1)), ZoneOfsNbits: 0<<6 | 15, RecircTable: NXCTRecircNone,
					Actions: []Action{&NXActionNAT{Flags: NXNATFlagSrc, IPMin: netip.MustParseAddr("192.0.2.1"), IPMax: netip.MustParseAddr("192.0.2.9"), ProtoMin: 1000, ProtoMax: 2000}}},
				&NXActionResubmitTable{InPort: 0xfff8, Table: 3},
				&ActionPushVLAN{EtherType: 0x8100},
				&ActionSetField{Field: FieldVlanVID.Uint(0x1000 | 10)},
				&ActionDecNwTTL{},
			)), []string{
			"ct(commit,zone=NXM_NX_REG1[0..15],nat(src=192.0.2.1-192.0.2.9:1000-2000))",
			"resubmit(,3)", "push_vlan:0x8100", "set_field:4106->vlan_vid", "dec_ttl",
		}},
		{"meter_mod drop band", &MeterMod{Command: MeterAdd, Flags: MeterFlagKbps | MeterFlagBurst, MeterID: 3,
			Bands: []MeterBand{&MeterBandDrop{Rate: 1000, BurstSize: 100}}}, []string{
			"OFPT_METER_MOD", "ADD meter=3 kbps burst bands=", "type=drop rate=1000 burst_size=100",
		}},
		{"packet_out", &PacketOut{BufferID: NoBuffer, InPort: PortController,
			Actions: []Action{&ActionOutput{Port: PortFlood}}, Data: make([]byte, 60)}, []string{
			"OFPT_PACKET_OUT", "in_port=CONTROLLER", "actions=FLOOD", "data_len=60",
		}},
		{"group_mod select", &GroupMod{Command: GroupAdd, GroupType: GroupTypeSelect, GroupID: 4, Buckets: []Bucket{
			{Weight: 10, WatchPort: PortAny, WatchGroup: GroupAny, Actions: []Action{&ActionOutput{Port: 1}}},
			{Weight: 20, WatchPort: PortAny, WatchGroup: GroupAny, Actions: []Action{&ActionOutput{Port: 2}}},
		}}, []string{
			"OFPT_GROUP_MOD", "ADD group_id=4,type=select",
			"bucket=weight:10,actions=output:1", "bucket=weight:20,actions=output:2",
		}},
		{"flow stats request", &FlowStatsRequest{TableID: TableAll, OutPort: PortAny, OutGroup: GroupAny,
			Match: Match{Fields: []OXM{FieldInPort.Uint(3)}}}, []string{"OFPST_FLOW request", "in_port=3"}},
		{"aggregate request", &AggregateStatsRequest{FlowStatsRequest{TableID: TableAll, OutPort: PortAny, OutGroup: GroupAny}},
			[]string{"OFPST_AGGREGATE request"}},
		{"port desc request", &StatsRequest{MPType: MPPortDesc}, []string{"OFPST_PORT_DESC request"}},
		{"port stats request", &PortStatsRequest{PortNo: 2}, []string{"OFPST_PORT request", "port_no=2"}},
		{"meter config request", &MeterStatsRequest{MPType: MPMeterConfig, MeterID: MeterAll}, []string{"OFPST_METER_CONFIG request", "meter=all"}},
		{"desc request", &StatsRequest{MPType: MPDesc}, []string{"OFPST_DESC request"}},
		{"set_config", &SetConfig{SwitchConfig: SwitchConfig{Flags: ConfigFragNormal, MissSendLen: MaxLenNoBuffer}},
			[]string{"OFPT_SET_CONFIG", "frags=normal", "miss_send_len=65535"}},
		{"role request", &RoleRequest{RoleBody: RoleBody{Role: RoleMaster, GenerationID: 42}},
			[]string{"OFPT_ROLE_REQUEST", "role=primary", "generation_id=42"}},
		{"barrier", &BarrierRequest{}, []string{"OFPT_BARRIER_REQUEST (OF1.3)"}},
		{"hello", NewHello(1, 4), []string{"OFPT_HELLO (OF1.3)", "version bitmap: 0x01, 0x04"}},
		{"echo", &EchoRequest{Data: []byte("hi")}, []string{"OFPT_ECHO_REQUEST (OF1.3)", "2 bytes of payload"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ofctl, "ofp-print", hex.EncodeToString(b)).CombinedOutput()
			if err != nil {
				t.Fatalf("ovs-ofctl ofp-print: %v\n%s", err, out)
			}
			text := string(out)
			if strings.Contains(text, "***decode error") || strings.Contains(text, "bad") {
				t.Errorf("OVS could not decode our message:\n%s", text)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("ofp-print output lacks %q:\n%s", w, text)
				}
			}
			// And what we encoded must decode back to itself.
			m, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode of our own encoding: %v", err)
			}
			if b2, _ := m.MarshalBinary(); string(b2) != string(b) {
				t.Errorf("re-encoding differs:\n%x\n%x", b2, b)
			}
		})
	}
}
