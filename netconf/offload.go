package netconf

import (
	"fmt"
	"strings"

	"github.com/safchain/ethtool"
)

// DisableTxOffload turns off every TX checksum offload feature of ifname,
// what `ethtool -K IF tx off` does. On the userspace (netdev) OVS datapath a
// veth that leaves TCP checksums to "hardware" emits segments with bad
// checksums that the receiver drops: ICMP works but TCP does not. With
// checksums off the kernel also drops the segmentation offloads that depend
// on them, so full, checksummed frames reach the bridge.
//
// netnsPath names the namespace holding ifname; "" means the calling
// thread's namespace.
func DisableTxOffload(ifname, netnsPath string) error {
	if netnsPath != "" {
		return InNetNS(netnsPath, func() error { return DisableTxOffload(ifname, "") })
	}
	if err := disableTxOffload(ifname); err != nil {
		return fmt.Errorf("disable tx offload on %q: %w", ifname, err)
	}
	return nil
}

func disableTxOffload(ifname string) error {
	// The ethtool socket addresses interfaces by name in the namespace it was
	// created in, hence one per call, on the caller's thread.
	et, err := ethtool.NewEthtool()
	if err != nil {
		return err
	}
	defer et.Close()
	features, err := et.FeaturesWithState(ifname)
	if err != nil {
		return err
	}
	off := map[string]bool{}
	for name, st := range features {
		if isTxChecksum(name) && st.Available && st.Active {
			off[name] = false
		}
	}
	if len(off) == 0 {
		return nil
	}
	if err := et.Change(ifname, off); err != nil {
		return err
	}
	// The kernel may silently refuse a change; check what is in effect.
	after, err := et.Features(ifname)
	if err != nil {
		return err
	}
	for name := range off {
		if after[name] {
			return fmt.Errorf("feature %s still on", name)
		}
	}
	return nil
}

// isTxChecksum matches the kernel feature names behind ethtool's "tx" switch
// (tx-checksum-ipv4, -ip-generic, -ipv6, -fcoe-crc, -sctp).
func isTxChecksum(name string) bool {
	return strings.HasPrefix(name, "tx-checksum-")
}
