package netconf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
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
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	names, err := featureNames(fd, ifname)
	if err != nil {
		return err
	}
	before, err := getFeatures(fd, ifname, len(names))
	if err != nil {
		return err
	}
	var off []int
	for i, name := range names {
		if isTxChecksum(name) && before.has(i, available) && before.has(i, active) {
			off = append(off, i)
		}
	}
	if len(off) == 0 {
		return nil
	}
	if err := setFeaturesOff(fd, ifname, len(names), off); err != nil {
		return err
	}
	// The kernel may silently refuse a change; check what is in effect.
	after, err := getFeatures(fd, ifname, len(names))
	if err != nil {
		return err
	}
	for _, i := range off {
		if after.has(i, active) {
			return fmt.Errorf("feature %s still on", names[i])
		}
	}
	return nil
}

// The SIOCETHTOOL feature calls, with buffers sized to the device's
// feature count. (github.com/safchain/ethtool, used before, reads the names
// into a fixed 1 MiB buffer: 3 MiB of garbage per interface, every time.)
const (
	ethSSFeatures = 4  // ETH_SS_FEATURES, the string set of feature names
	ethGStringLen = 32 // ETH_GSTRING_LEN
	maxFeatures   = 1024
)

// The words of struct ethtool_get_features_block, one per 32 features.
const (
	available = iota
	requested
	active
	neverChanged
	blockWords
)

// ifreqData is struct ifreq carrying a pointer to the ethtool command.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [unsafe.Sizeof(unix.Ifreq{}) - unix.IFNAMSIZ - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool runs the ethtool command in buf (which it reads back into) on
// ifname.
func ethtool(fd int, ifname string, buf []byte) error {
	ifr := ifreqData{data: unsafe.Pointer(&buf[0])}
	if len(ifname) >= len(ifr.name) {
		return fmt.Errorf("interface name %q too long", ifname)
	}
	copy(ifr.name[:], ifname)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return fmt.Errorf("ethtool command %#x on %s: %w", binary.NativeEndian.Uint32(buf), ifname, errno)
	}
	return nil
}

// featureNames returns the names of ifname's features, by bit index.
func featureNames(fd int, ifname string) ([]string, error) {
	// struct ethtool_sset_info for one set: cmd, reserved, sset_mask, data[1].
	info := make([]byte, 20)
	binary.NativeEndian.PutUint32(info[0:], unix.ETHTOOL_GSSET_INFO)
	binary.NativeEndian.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtool(fd, ifname, info); err != nil {
		return nil, err
	}
	n := int(binary.NativeEndian.Uint32(info[16:]))
	if binary.NativeEndian.Uint64(info[8:]) == 0 || n == 0 {
		return nil, nil
	}
	if n > maxFeatures {
		return nil, fmt.Errorf("%s: %d features, more than %d", ifname, n, maxFeatures)
	}
	// struct ethtool_gstrings: cmd, string_set, len, then the strings.
	gs := make([]byte, 12+n*ethGStringLen)
	binary.NativeEndian.PutUint32(gs[0:], unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(gs[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(gs[8:], uint32(n))
	if err := ethtool(fd, ifname, gs); err != nil {
		return nil, err
	}
	if got := binary.NativeEndian.Uint32(gs[8:]); got != uint32(n) {
		return nil, fmt.Errorf("%s: %d feature names, %d announced", ifname, got, n)
	}
	names := make([]string, n)
	for i := range names {
		s := gs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if end := bytes.IndexByte(s, 0); end >= 0 {
			s = s[:end]
		}
		names[i] = string(s)
	}
	return names, nil
}

// features is the answer to ETHTOOL_GFEATURES: cmd, size, then the blocks.
type features []byte

// has reports whether the feature at bit is set in the blocks' word.
func (f features) has(bit, word int) bool {
	off := 8 + (bit/32*blockWords+word)*4
	return binary.NativeEndian.Uint32(f[off:])&(1<<(bit%32)) != 0
}

func getFeatures(fd int, ifname string, n int) (features, error) {
	blocks := (n + 31) / 32
	f := make(features, 8+blocks*blockWords*4)
	binary.NativeEndian.PutUint32(f[0:], unix.ETHTOOL_GFEATURES)
	binary.NativeEndian.PutUint32(f[4:], uint32(blocks))
	if err := ethtool(fd, ifname, f); err != nil {
		return nil, err
	}
	return f, nil
}

// setFeaturesOff turns the features at bits off, leaving the others alone.
func setFeaturesOff(fd int, ifname string, n int, bits []int) error {
	blocks := (n + 31) / 32
	// struct ethtool_sfeatures: cmd, size, then per block valid, requested.
	buf := make([]byte, 8+blocks*8)
	binary.NativeEndian.PutUint32(buf[0:], unix.ETHTOOL_SFEATURES)
	binary.NativeEndian.PutUint32(buf[4:], uint32(blocks))
	for _, b := range bits {
		off := 8 + b/32*8
		binary.NativeEndian.PutUint32(buf[off:], binary.NativeEndian.Uint32(buf[off:])|1<<(b%32))
	}
	return ethtool(fd, ifname, buf)
}

// isTxChecksum matches the kernel feature names behind ethtool's "tx" switch
// (tx-checksum-ipv4, -ip-generic, -ipv6, -fcoe-crc, -sctp).
func isTxChecksum(name string) bool {
	return strings.HasPrefix(name, "tx-checksum-")
}
