package ofp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeMatchAndActions pins exact wire bytes of matches and actions,
// padding and masks included.
func TestEncodeMatchAndActions(t *testing.T) {
	tests := []struct {
		name string
		enc  func(w *writer)
		want string
	}{
		{"empty match pads 4 to 8", Match{}.appendTo, "0001 0004 00000000"},
		{"in_port: 12 bytes padded to 16", Match{Fields: []OXM{FieldInPort.Uint(6)}}.appendTo,
			"0001 000c 80000004 00000006 00000000"},
		{"eth_dst: 14 bytes padded to 16", Match{Fields: []OXM{FieldEthDst.MAC(net.HardwareAddr{0xf2, 0x0b, 0xa4, 0x7d, 0xf8, 0xea})}}.appendTo,
			"0001 000e 80000606 f20ba47df8ea 0000"},
		{"masked prefix sets hasmask and doubles the length", Match{Fields: []OXM{FieldIPv4Dst.Prefix(netip.MustParsePrefix("10.77.0.0/16"))}}.appendTo,
			"0001 0010 80001908 0a4d0000 ffff0000"},
		{"full-length prefix is exact", Match{Fields: []OXM{FieldIPv4Dst.Prefix(netip.MustParsePrefix("10.77.0.9/32"))}}.appendTo,
			"0001 000c 80001804 0a4d0009 00000000"},
		{"prefix host bits are cleared", Match{Fields: []OXM{FieldIPv4Src.Prefix(netip.MustParsePrefix("10.77.3.4/24"))}}.appendTo,
			"0001 0010 80001708 0a4d0300 ffffff00"},
		{"ct_state masked, Nicira class 1 field 105", Match{Fields: []OXM{FieldCtState.Masked(CtStateTrk|CtStateNew, CtStateTrk|CtStateNew)}}.appendTo,
			"0001 0010 0001d308 00000021 00000021"},
		{"ct_zone is 16 bits", Match{Fields: []OXM{FieldCtZone.Uint(5)}}.appendTo,
			"0001 000a 0001d402 0005 000000000000"},
		{"reg3", Match{Fields: []OXM{FieldReg(3).Uint(0xabcd)}}.appendTo,
			"0001 000c 00010604 0000abcd 00000000"},
		{"set_field eth_src pads to 16", (&ActionSetField{Field: FieldEthSrc.MAC(net.HardwareAddr{1, 2, 3, 4, 5, 6})}).appendTo,
			"0019 0010 80000806 010203040506 0000"},
		{"set_field ipv6 pads 24 to 24", (&ActionSetField{Field: FieldIPv6Dst.Addr(netip.MustParseAddr("fe80::1"))}).appendTo,
			"0019 0018 80003610 fe800000000000000000000000000001"},
		{"output", (&ActionOutput{Port: PortController, MaxLen: MaxLenNoBuffer}).appendTo,
			"0000 0010 fffffffd ffff 000000000000"},
		{"nat dst ip and port: 16+4+2 padded to 24", (&NXActionNAT{Flags: NXNATFlagDst, IPMin: netip.MustParseAddr("10.77.0.11"), ProtoMin: 80}).appendTo,
			"ffff 0018 00002320 0024 0000 0002 0011 0a4d000b 0050 0000"},
		{"bare nat", (&NXActionNAT{}).appendTo, "ffff 0010 00002320 0024 0000 0000 0000"},
		{"ct commit zone 5 with nested nat", (&NXActionCT{Flags: NXCTFlagCommit, ZoneOfsNbits: 5, RecircTable: NXCTRecircNone, Actions: []Action{&NXActionNAT{}}}).appendTo,
			"ffff 0028 00002320 0023 0001 00000000 0005 ff 000000 0000" + "ffff 0010 00002320 0024 0000 0000 0000"},
		{"resubmit", (&NXActionResubmitTable{InPort: 0xfff8, Table: 2}).appendTo, "ffff 0010 00002320 000e fff8 02 000000"},
		{"apply actions instruction", ApplyActions(&ActionPopVLAN{}).appendTo, "0004 0010 00000000 0012 0008 00000000"},
		{"clear actions", ClearActions().appendTo, "0005 0008 00000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &writer{}
			tc.enc(w)
			if w.err != nil {
				t.Fatal(w.err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(w.b, want) {
				t.Errorf("got  %x\nwant %x", w.b, want)
			}
		})
	}
}

// TestDecodeRejects feeds malformed bodies inside otherwise valid
// messages and checks each fails with the expected cause.
func TestDecodeRejects(t *testing.T) {
	// A flow_mod header and fixed part (56 bytes) followed by match and
	// instructions given per case.
	flowMod := func(rest string) []byte {
		fixed := "0000000000000000 0000000000000000 00 00 0000 0000 0000 ffffffff ffffffff ffffffff 0000 0000"
		b := unhex(t, "040e0000 00000000"+fixed+rest)
		b[2], b[3] = byte(len(b)>>8), byte(len(b))
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", unhex(t, "0400"), ErrTruncated},
		{"length below 8", unhex(t, "04000004 00000000"), ErrBadLength},
		{"trailing bytes", unhex(t, "04140008 00000000 00"), ErrBadLength},
		{"buffer shorter than length", unhex(t, "04140010 00000000"), ErrTruncated},
		{"other version", unhex(t, "01140008 00000000"), ErrUnsupported},
		{"unknown type", unhex(t, "04630008 00000000"), ErrUnsupported},
		{"barrier with body", unhex(t, "04140010 00000000 0000000000000000"), ErrBadLength},
		{"standard match type", flowMod("0000 0004 00000000"), ErrUnsupported},
		{"match length below 4", flowMod("0001 0002 00000000"), ErrBadLength},
		{"match without padding", flowMod("0001 000c 80000004 00000006"), ErrTruncated},
		{"OXM overruns match", flowMod("0001 000c 80000008 00000006 00000000"), ErrTruncated},
		{"masked OXM of odd size", flowMod("0001 000b 80000b03 0a0a0a 00000000 00"), ErrBadLength},
		{"action length below 8", flowMod("0001 0004 00000000 0004 000c 00000000 0000 0004"), ErrBadLength},
		{"output action too long", flowMod("0001 0004 00000000 0004 0020 00000000 0000 0018 00000001 ffff 000000000000 0000000000000000"), ErrBadLength},
		{"set_field with extra padding", flowMod("0001 0004 00000000 0004 0020 00000000 0019 0018 80000004 00000001 000000000000000000000000"), ErrBadLength},
		{"instruction overruns", flowMod("0001 0004 00000000 0001 0010 01000000"), ErrTruncated},
		{"nat mixes address families", flowMod("0001 0004 00000000 0004 0020 00000000 ffff 0018 00002320 0024 0000 0000 0005 0a000001 00000000"), ErrUnsupported},
		{"nat port bound zero", flowMod("0001 0004 00000000 0004 0020 00000000 ffff 0018 00002320 0024 0000 0000 0010 0000 000000000000"), ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.b)
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, %v; want *DecodeError for %v", m, err, tc.want)
			}
		})
	}
}

// TestRoundTripBuilt checks messages built through the API decode back to
// what was built, including fields unknown to the package.
func TestRoundTripBuilt(t *testing.T) {
	unknown := OXM{ID: FieldID{Class: 0x0001, Field: 120}, Value: []byte{1, 2, 3}, Mask: []byte{4, 5, 6}}
	exp := OXM{ID: FieldID{Class: ClassExperimenter, Field: 9}, Experimenter: 0xaabbccdd, Value: []byte{7}}
	fm := NewFlowMod(3, 100, Match{Fields: []OXM{unknown, exp, FieldIPv6Src.Prefix(netip.MustParsePrefix("fd00::/8"))}},
		ApplyActions(&ActionExperimenter{Experimenter: 0x1234, Data: []byte{0, 1, 2, 3}},
			&NXActionUnknown{Subtype: 999, Data: []byte{9, 9, 9, 9, 9, 9}},
			&NXActionConjunction{Clause: 1, NClauses: 2, ID: 77}))
	fm.Xid = 0x55
	b, err := fm.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*FlowMod)
	if got.Xid != 0x55 || got.TableID != 3 || len(got.Match.Fields) != 3 {
		t.Fatalf("decoded %+v", got)
	}
	if f := got.Match.Fields[0]; f.ID != unknown.ID || !bytes.Equal(f.Value, unknown.Value) || !bytes.Equal(f.Mask, unknown.Mask) {
		t.Errorf("unknown field decoded as %+v", f)
	}
	if f := got.Match.Fields[1]; f.Experimenter != 0xaabbccdd || !bytes.Equal(f.Value, []byte{7}) {
		t.Errorf("experimenter field decoded as %+v", f)
	}
	b2, _ := m.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Errorf("re-encoding differs\n%x\n%x", b, b2)
	}
}

func TestEncodeTooLong(t *testing.T) {
	big := &EchoRequest{Data: make([]byte, 0x10000)}
	if _, err := big.MarshalBinary(); !errors.Is(err, ErrTooLong) {
		t.Errorf("64 KiB echo: err = %v, want ErrTooLong", err)
	}
	huge := &ActionSetField{Field: OXM{ID: FieldMetadata, Value: make([]byte, 300)}}
	if _, err := (&PacketOut{Actions: []Action{huge}}).MarshalBinary(); !errors.Is(err, ErrTooLong) {
		t.Errorf("300-byte OXM: err = %v, want ErrTooLong", err)
	}
}

func TestReadMessage(t *testing.T) {
	hello, _ := NewHello(4).MarshalBinary()
	barrier, _ := (&BarrierRequest{Header: Header{Xid: 9}}).MarshalBinary()
	r := bytes.NewReader(append(append(append([]byte{}, hello...), barrier...), hello[:5]...))
	if m, err := ReadMessage(r); err != nil {
		t.Fatal(err)
	} else if h, ok := m.(*Hello); !ok || len(h.Elements) != 1 {
		t.Fatalf("first message %#v", m)
	}
	if m, err := ReadMessage(r); err != nil || m.MsgHeader().Xid != 9 {
		t.Fatalf("second message %v, %v", m, err)
	}
	if _, err := ReadMessage(r); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut message: %v, want ErrTruncated", err)
	}
	if _, err := ReadMessage(bytes.NewReader(nil)); err == nil || err.Error() != "EOF" {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestNestingBound(t *testing.T) {
	nest := func(depth int) []byte {
		var a Action = &NXActionNAT{}
		for i := 0; i < depth; i++ {
			a = &NXActionCT{Actions: []Action{a}}
		}
		b, err := (&PacketOut{Actions: []Action{a}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := Decode(nest(maxActionDepth)); err != nil {
		t.Errorf("ct nested %d deep: %v", maxActionDepth, err)
	}
	if _, err := Decode(nest(maxActionDepth + 1)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ct nested %d deep: %v, want ErrUnsupported", maxActionDepth+1, err)
	}
}
