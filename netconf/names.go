package netconf

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
)

// MACFor derives a stable MAC address from name: 02 (locally administered,
// unicast) followed by five bytes of the name's SHA-256. A chute keeps its
// MAC across restarts, so flows matching on it and neighbours' ARP caches
// stay valid.
func MACFor(name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(name))
	mac := make(net.HardwareAddr, 6)
	mac[0] = 0x02
	copy(mac[1:], sum[:5])
	return mac
}

// HostIfFor derives the host-side interface name of a chute's link: "pd-"
// and 12 hex digits of the name's SHA-256, 15 bytes, the kernel's limit.
// Chute names are longer than interface names allow, so they are hashed.
func HostIfFor(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "pd-" + hex.EncodeToString(sum[:6])
}
