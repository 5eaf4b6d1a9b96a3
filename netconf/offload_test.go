package netconf_test

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

// TestDisableTxOffloadAllocatesLittle turns offload off on a fresh veth, as
// the daemon does for every chute it starts and, every few seconds, for its
// bridge. Doing so must not cost megabytes: garbage of that size, made on
// every attach, inflates the daemon's heap and so its resident memory.
func TestDisableTxOffloadAllocatesLittle(t *testing.T) {
	nettest.Require(t, "ethtool")
	h := nettest.NewHost(t)
	var allocated [2]uint64 // turning off, then finding it off
	err := netconf.InNetNS(h.NetNS, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "offl0"}, PeerName: "offl1"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		for i := range allocated {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			err := netconf.DisableTxOffload("offl0", "")
			runtime.ReadMemStats(&m1)
			if err != nil {
				return err
			}
			allocated[i] = m1.TotalAlloc - m0.TotalAlloc
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTxOff(t, h, "offl0")
	for i, what := range []string{"turning TX offload off", "finding it off"} {
		if allocated[i] > 64<<10 {
			t.Errorf("%s allocated %d KiB, want at most 64", what, allocated[i]>>10)
		}
	}
	t.Logf("allocated %d and %d bytes", allocated[0], allocated[1])
}
