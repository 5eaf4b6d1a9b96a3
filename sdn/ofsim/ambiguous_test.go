package ofsim

import (
	"net/netip"
	"slices"
	"testing"

	"paradrop/sdn/controller"
	"paradrop/sdn/ofp"
)

// Ambiguities finds the pairs some packet matches both at one priority
// and treats differently, and only those: not disjoint matches, not pairs
// at different priorities, not pairs doing the same, not connection
// states that exclude each other.
func TestAmbiguities(t *testing.T) {
	ip6 := ofp.FieldEthType.Uint(EthIPv6)
	na := []ofp.OXM{ip6, ofp.FieldIPProto.Uint(ProtoICMPv6), ofp.FieldICMPv6Type.Uint(136)}
	gwMAC := ofp.FieldEthDst.MAC(macA)
	lan := ofp.FieldIPv6Dst.Prefix(netip.MustParsePrefix("2001:db8:1::/64"))
	flows := []controller.Flow{
		// An advertisement to the gateway's MAC at a LAN address hits both.
		flow(4, 200, "NA to the gateway's MAC", append(slices.Clone(na), gwMAC), out(1)),
		flow(4, 200, "NA to the LAN prefix", append(slices.Clone(na), lan), out(2)),
		// Same match bits under both masks: overlapping prefixes.
		flow(4, 100, "to 2001:db8::/32", []ofp.OXM{ip6, ofp.FieldIPv6Dst.Prefix(netip.MustParsePrefix("2001:db8::/32"))}, out(1)),
		flow(4, 100, "to 2001:db8:1::5", []ofp.OXM{ip6, ofp.FieldIPv6Dst.Addr(netip.MustParseAddr("2001:db8:1::5"))}, out(2)),
		// Disjoint: different ICMPv6 types.
		flow(4, 50, "NS", []ofp.OXM{ip6, ofp.FieldIPProto.Uint(ProtoICMPv6), ofp.FieldICMPv6Type.Uint(135)}, out(1)),
		flow(4, 50, "NA", na, out(2)),
		// Overlapping, but the same instructions: no matter which.
		flow(4, 40, "NA, a", append(slices.Clone(na), gwMAC), out(3)),
		flow(4, 40, "NA, b", append(slices.Clone(na), lan), out(3)),
		// Overlapping, at different priorities.
		flow(4, 30, "NA high", na, out(1)),
		flow(4, 29, "NA low", na, out(2)),
		// Overlapping, in different tables.
		flow(3, 30, "NA in 3", na, out(2)),
		// Established and related exclude each other.
		flow(2, 300, "established", []ofp.OXM{ip6, ct(ofp.CtStateEst)}, out(1)),
		flow(2, 300, "related", []ofp.OXM{ip6, ct(ofp.CtStateRel)}, out(2)),
		// Tracked without a state named overlaps with established.
		flow(2, 200, "tracked", []ofp.OXM{ip6, ofp.FieldCtState.Masked(ofp.CtStateTrk, ofp.CtStateTrk)}, out(1)),
		flow(2, 200, "established, again", []ofp.OXM{ip6, ct(ofp.CtStateEst)}, out(2)),
	}
	var got [][2]string
	for _, a := range Ambiguities(flows) {
		got = append(got, [2]string{a.A.Note, a.B.Note})
	}
	want := [][2]string{
		{"NA to the gateway's MAC", "NA to the LAN prefix"},
		{"to 2001:db8::/32", "to 2001:db8:1::5"},
		{"tracked", "established, again"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ambiguities %q, want %q", got, want)
	}
}
