package sdn

import (
	"net/netip"
	"testing"

	"paradrop/sdn/ofsim"
)

// No packet meets two flows of one table and priority that would treat
// it differently: Open vSwitch picks between such flows by the order they
// were installed in, so a packet's fate would change with a restart or
// with one chute attached before another. The matrix's gateway, with its
// LAN hosts learned and without, with a delegated IPv6 prefix and
// without; FuzzPolicyInvariants asks the same of random policies.
func TestNoAmbiguousFlows(t *testing.T) {
	for _, tt := range []struct {
		name              string
		learned, noGlobal bool
	}{{"matrix", false, false}, {"LAN hosts learned", true, false}, {"no delegated prefix", true, true}} {
		topo, chutes, lanMACs := simTopo()
		if tt.learned {
			topo.LANHosts = map[string]uint32{lanMACs[0].String(): topo.LANPorts[0], lanMACs[1].String(): topo.LANPorts[1]}
			topo.LANHostIPs = map[string][]netip.Addr{lanMACs[0].String(): {lan1Addr}, lanMACs[1].String(): {lan2Addr}}
		}
		if tt.noGlobal {
			topo.Global6 = netip.Prefix{}
		}
		for _, a := range ofsim.Ambiguities(derive(topo, chutes).Flows) {
			t.Errorf("%s: %s", tt.name, a)
		}
	}
}
