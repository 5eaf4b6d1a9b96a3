// Package netconf owns the network plumbing of chutes and of the gateway:
// named network namespaces, the veth pair that attaches each chute to the
// Open vSwitch bridge, addresses on the bridge's internal port, and the
// gateway's nftables tables around them: the masquerade from the chute
// subnet out of the WAN interface, and the guard that lets chute traffic
// leave by that interface alone.
//
// Everything is done in-process with netlink, ioctls and nftables netlink
// messages; nothing shells out to ip or ethtool, so the daemon does not depend
// on their versions or output formats.
//
// Unless a function takes a namespace path, it acts on the network namespace
// of the calling thread. To act inside another namespace, wrap the call in
// [InNetNS]; this is how the tests run the whole gateway inside namespaces
// they created, without touching the machine's real network.
package netconf
