// Package nettest builds fake networks out of network namespaces for
// integration tests that run as root on a real kernel: a "LAN device", a
// "fake WAN upstream" or a "cloud host" is a Host, a namespace the test
// creates and that is removed when the test ends. Hosts are wired with veth
// pairs, to each other, to a Linux bridge, or to the test process's own
// namespace (to be added to an OVS bridge); commands and Go sockets run
// inside them.
//
// Use only addresses that stay inside these namespaces (TEST-NET ranges,
// the chute subnet): nothing here touches the machine's real interfaces.
//
// Helpers taking a testing.TB call t.Fatal, so call them from the test's
// goroutine.
package nettest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"paradrop/netconf"
)

// Host is a network namespace owned by one test.
type Host struct {
	Name  string // unique, e.g. "pdt-1a2b3c4d"
	NetNS string // path of the pinned namespace, in a directory of the test's
}

// NewHost creates an empty namespace (loopback up, see netconf.EnsureNetNS)
// and deletes it when the test ends. It is pinned in the test's own
// temporary directory, not iproute2's /run/netns, where `ip netns add`
// can bind the directory over pins of concurrent tests; to debug a stuck
// test, enter it with nsenter --net=PATH.
func NewHost(t testing.TB) *Host {
	t.Helper()
	name := Name("pdt-")
	// Its removal, registered first, runs last: a namespace left mounted
	// fails the test.
	h := &Host{Name: name, NetNS: filepath.Join(t.TempDir(), name)}
	if err := netconf.EnsureNetNS(h.NetNS); err != nil {
		t.Fatalf("nettest: new host: %v", err)
	}
	t.Cleanup(func() {
		if err := netconf.DeleteNetNS(h.NetNS); err != nil {
			t.Errorf("nettest: %v", err)
		}
	})
	return h
}

// Name returns prefix followed by 8 random hex digits: a name for a host or
// an interface that no concurrent test uses. Keep prefix at most 7 bytes so
// it fits an interface name.
func Name(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Require fails the test (it does not skip: a missing tool is a broken test
// machine) unless it runs as root and every named program is on PATH.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("nettest: these tests need root (network namespaces, veth, nftables)")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("nettest: %s not found; install with: apt-get install -y busybox-static ethtool iproute2 nftables", p)
		}
	}
}
