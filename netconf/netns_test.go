package netconf_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"

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

// privateMountsEnv selects, in a re-executed test binary, the scenario it
// runs in a mount namespace of its own.
const privateMountsEnv = "NETCONF_TEST_PRIVATE_MOUNTS"

// inPrivateMounts reports whether this process is the one to run the
// calling test's body: the re-executed test binary, in a mount namespace of
// its own with a fresh /run, so that `ip netns` and iproute2's /run/netns
// can be raced without touching the machine's. The outer process runs it
// and fails the test if it fails.
func inPrivateMounts(t *testing.T) bool {
	t.Helper()
	nettest.Require(t, "ip")
	if os.Getenv(privateMountsEnv) == t.Name() {
		// The copies of the machine's pins in /run/netns (other tests') go
		// first, or they would stay below the fresh /run, mounted there.
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter("/run/netns"))
		if err != nil {
			t.Fatal(err)
		}
		for i := len(ms) - 1; i >= 0; i-- {
			if err := syscall.Unmount(ms[i].Mountpoint, syscall.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
			t.Fatal(err)
		}
		return true
	}
	cmd := exec.Command("/proc/self/exe", "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), privateMountsEnv+"="+t.Name())
	// Go makes every mount private in the new namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("in a mount namespace of its own: %v\n%s", err, out)
	}
	return false
}

// pinnedUnder lists the namespace pins left below dir.
func pinnedUnder(t *testing.T, dir string) []string {
	t.Helper()
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, l := range strings.Split(string(info), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") && strings.Contains(l, " - nsfs ") {
			left = append(left, l)
		}
	}
	return left
}

// TestNetNSWithIPRacing creates and deletes namespaces in iproute2's
// directory from several goroutines while `ip netns add/del` runs in a
// loop beside them: every delete succeeds and no namespace is left pinned,
// hidden under ip's bind of the directory over itself.
func TestNetNSWithIPRacing(t *testing.T) {
	if !inPrivateMounts(t) {
		return
	}
	const workers, rounds = 4, 25
	first := make(chan struct{})
	var once sync.Once
	var g errgroup.Group
	for w := range workers {
		g.Go(func() error {
			for i := range rounds {
				path := filepath.Join("/run/netns", fmt.Sprintf("pdt-%d-%d", w, i))
				if err := netconf.EnsureNetNS(path); err != nil {
					return err
				}
				once.Do(func() { close(first) }) // a namespace is pinned: let ip in
				if err := netconf.DeleteNetNS(path); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		<-first
		for i := range rounds {
			name := fmt.Sprintf("pdip-%d", i)
			for _, args := range [][]string{{"netns", "add", name}, {"netns", "del", name}} {
				if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
					return fmt.Errorf("ip %v: %v: %s", args, err, out)
				}
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		t.Error(err)
	}
	if left := pinnedUnder(t, "/run/netns"); len(left) > 0 {
		t.Errorf("namespaces left pinned:\n%s", strings.Join(left, "\n"))
	}
}

// TestDeleteNetNSUnderLateBind binds iproute2's directory over itself, as a
// racing `ip netns add` can, after a namespace was pinned there: deleting it
// still leaves nothing behind.
func TestDeleteNetNSUnderLateBind(t *testing.T) {
	if !inPrivateMounts(t) {
		return
	}
	path := "/run/netns/pdt-late"
	if err := netconf.EnsureNetNS(path); err != nil {
		t.Fatal(err)
	}
	// What ip does when it finds the directory not a mount point.
	if err := syscall.Mount("/run/netns", "/run/netns", "none", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", "/run/netns", "none", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	if err := netconf.DeleteNetNS(path); err != nil {
		t.Fatal(err)
	}
	if left := pinnedUnder(t, "/run/netns"); len(left) > 0 {
		t.Errorf("namespace left pinned:\n%s", strings.Join(left, "\n"))
	}
}

// Two pins stacked on one path (two EnsureNetNS racing on it) both go.
func TestDeleteNetNSStacked(t *testing.T) {
	nettest.Require(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "chute")
	// Whatever DeleteNetNS leaves, the directory must go.
	t.Cleanup(func() {
		for syscall.Unmount(path, syscall.MNT_DETACH) == nil {
		}
	})
	if err := netconf.EnsureNetNS(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(path, path, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := netconf.DeleteNetNS(path); err != nil {
		t.Fatal(err)
	}
	if left := pinnedUnder(t, dir); len(left) > 0 {
		t.Errorf("pins left:\n%s", strings.Join(left, "\n"))
	}
}
