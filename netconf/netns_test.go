package netconf_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"paradrop/netconf"
	"paradrop/netconf/nettest"
)

func TestEnsureNetNS(t *testing.T) {
	nettest.Require(t)
	path := filepath.Join(t.TempDir(), "netns", "chute")
	// Registered after TempDir, so it runs first and the directory can go.
	t.Cleanup(func() { netconf.DeleteNetNS(path) })

	var firstIno uint64
	cases := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"fresh", func(t *testing.T) {}},
		{"again keeps the namespace", func(t *testing.T) {}},
		{"settings restored", func(t *testing.T) {
			// Someone reset them: Ensure must put them back.
			err := netconf.InNetNS(path, func() error {
				lo, err := netlink.LinkByName("lo")
				if err != nil {
					return err
				}
				if err := netlink.LinkSetDown(lo); err != nil {
					return err
				}
				return os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("1024"), 0o644)
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			if err := netconf.EnsureNetNS(path); err != nil {
				t.Fatal(err)
			}
			ino := nsInode(t, path)
			if ino == nsInode(t, "/proc/self/ns/net") {
				t.Fatal("namespace at path is the test's own")
			}
			if firstIno == 0 {
				firstIno = ino
			} else if ino != firstIno {
				t.Fatalf("namespace replaced: inode %d, was %d", ino, firstIno)
			}
			checkNetNSSettings(t, path)
		})
	}

	t.Run("delete", func(t *testing.T) {
		for range 2 { // the second call finds nothing and must not fail
			if err := netconf.DeleteNetNS(path); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still there: %v", path, err)
			}
		}
	})
}

// A plain file where a namespace should be (a crash between creating the
// file and mounting on it) is turned into a namespace.
func TestEnsureNetNSOverPlainFile(t *testing.T) {
	nettest.Require(t)
	path := filepath.Join(t.TempDir(), "chute")
	t.Cleanup(func() { netconf.DeleteNetNS(path) })
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := netconf.EnsureNetNS(path); err != nil {
		t.Fatal(err)
	}
	checkNetNSSettings(t, path)
}

func checkNetNSSettings(t *testing.T, path string) {
	t.Helper()
	want := map[string]string{
		"net/ipv4/ip_unprivileged_port_start": "0",
		"net/ipv4/ping_group_range":           "0\t2147483647",
	}
	got := map[string]string{}
	var loFlags net.Flags
	err := netconf.InNetNS(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		loFlags = lo.Attrs().Flags
		for k := range want {
			b, err := os.ReadFile("/proc/sys/" + k)
			if err != nil {
				return err
			}
			got[k] = strings.TrimSpace(string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if loFlags&net.FlagUp == 0 {
		t.Errorf("lo is not up: %v", loFlags)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("sysctl %s = %q, want %q", k, got[k], v)
		}
	}
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
