package netconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// chuteSysctls are set in every namespace EnsureNetNS creates. A chute's
// root user is unprivileged with respect to its namespace (the namespace
// belongs to the host user namespace), so it cannot change its interfaces;
// these two settings give back what a service needs: binding ports below
// 1024 and sending ICMP echo through unprivileged ping sockets.
var chuteSysctls = []struct{ key, value string }{
	{"net/ipv4/ip_unprivileged_port_start", "0"},
	{"net/ipv4/ping_group_range", "0 2147483647"},
}

// EnsureNetNS makes path a bind mount of a network namespace, like
// `ip netns add` but at a path of our choosing. If path already holds a
// namespace it is kept; either way loopback is brought up and the chute
// sysctls are (re)applied, so the call is idempotent.
func EnsureNetNS(path string) error {
	mounted, err := isNetNSMount(path)
	if err != nil {
		return fmt.Errorf("ensure netns %q: %w", path, err)
	}
	if !mounted {
		if err := createNetNS(path); err != nil {
			return fmt.Errorf("ensure netns %q: %w", path, err)
		}
	}
	err = InNetNS(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		for _, s := range chuteSysctls {
			if err := writeSysctl(s.key, s.value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure netns %q: %w", path, err)
	}
	return nil
}

// createNetNS unshares a fresh network namespace on a locked thread and pins
// it by bind-mounting the thread's namespace file onto path.
func createNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return err
	}
	f.Close()

	errc := make(chan error, 1)
	// A fresh goroutine, so that if switching back fails the thread (still
	// locked) is thrown away by the runtime instead of leaking the new
	// namespace to unrelated goroutines.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		mountErr := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("return to original netns: %w", err)
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			os.Remove(path)
			mountErr = fmt.Errorf("bind mount: %w", mountErr)
		}
		errc <- mountErr
	}()
	return <-errc
}

// isNetNSMount reports whether path is a pinned namespace; a missing path or
// a plain file (left over from a crash between create and mount) is not.
func isNetNSMount(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// DeleteNetNS unmounts and removes a namespace created by EnsureNetNS. The
// namespace itself disappears once no process or open file holds it. It is
// not an error if path does not exist.
func DeleteNetNS(path string) error {
	// MNT_DETACH: an open handle elsewhere must not make deletion fail.
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete netns %q: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %q: %w", path, err)
	}
	return nil
}

// InNetNS runs fn on a locked OS thread that has entered the namespace at
// path, and returns fn's error. Sockets and netlink handles opened by fn stay
// in that namespace after fn returns; goroutines started by fn do not run in
// it. fn runs on its own goroutine, so it must not call t.FailNow.
func InNetNS(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("in netns: %w", err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	// A dedicated goroutine: if fn exits abnormally or the original namespace
	// cannot be restored, the thread is left locked and the runtime discards
	// it rather than reuse a thread sitting in the wrong namespace.
	go func() {
		err := fmt.Errorf("in netns %q: fn did not return", path)
		defer func() { errc <- err }()
		runtime.LockOSThread()
		orig, oerr := os.Open("/proc/thread-self/ns/net")
		if oerr != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("in netns %q: %w", path, oerr)
			return
		}
		defer orig.Close()
		if serr := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); serr != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("in netns %q: setns: %w", path, serr)
			return
		}
		err = fn()
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			err = errors.Join(err, fmt.Errorf("in netns %q: return to original netns: %w", path, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return <-errc
}

// writeSysctl writes /proc/sys/KEY. Network sysctls are resolved in the
// namespace of the thread that opens the file, so this is namespace-aware
// when called inside InNetNS.
func writeSysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%q: %w", key, value, err)
	}
	return nil
}
