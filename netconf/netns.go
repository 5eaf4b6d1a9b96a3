package netconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// chuteSysctls are set in every namespace EnsureNetNS creates or
// MoveNetNS fills. A chute's root user is unprivileged with respect to
// its namespace (the namespace belongs to the host user namespace, unless
// the chute keeps a network capability: see MoveNetNS), so it cannot
// change its interfaces; these two settings give back what a service
// needs: binding ports below 1024 and sending ICMP echo through
// unprivileged ping sockets.
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
	if err := InNetNS(path, setUpNetNS); err != nil {
		return fmt.Errorf("ensure netns %q: %w", path, err)
	}
	return nil
}

// createNetNS unshares a fresh network namespace on a locked thread and pins
// it by bind-mounting the thread's namespace file onto path.
func createNetNS(path string) error {
	if err := prepareNetNSDir(filepath.Dir(path)); err != nil {
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

// ipNetNSDir is where iproute2 pins named namespaces. `ip netns add` makes
// it a shared mount point first, binding it onto itself (recursively) if it
// is not one: namespaces pinned there before that bind stay mounted under
// it, where no path reaches them, for good.
const ipNetNSDir = "/run/netns"

// prepareNetNSDir creates dir. If it is iproute2's, it also makes it the
// mount point ip wants before anything is pinned there, so that ip never
// binds it over our namespaces: once, under a lock our processes share,
// and only while nothing is pinned there. Should ip bind it at the same
// moment all the same, its bind joins the peer group of ours, and an
// unmount through either reaches both. Our own directories need none of
// this: nobody else mounts over them.
func prepareNetNSDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(dir); err != nil || real != ipNetNSDir {
		return err
	}
	lock, err := os.Open(ipNetNSDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", ipNetNSDir, err)
	}
	share := func() error { return unix.Mount("", ipNetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "") }
	err = share()
	if !errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point
		return err
	}
	pinned, err := mountsUnder(ipNetNSDir)
	if err != nil || len(pinned) > 0 {
		return err // binding it now would hide them: leave it as it is
	}
	if err := unix.Mount(ipNetNSDir, ipNetNSDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a mount point: %w", ipNetNSDir, err)
	}
	return share()
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, err
	}
	var under []string
	for _, m := range ms {
		if m.Mountpoint != dir {
			under = append(under, m.Mountpoint)
		}
	}
	return under, nil
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

// maxStacked bounds the pins DeleteNetNS takes off one path: two
// EnsureNetNS racing on a path can stack two.
const maxStacked = 8

// DeleteNetNS unmounts and removes a namespace created by EnsureNetNS. The
// namespace itself disappears once no process or open file holds it. It is
// not an error if path does not exist; it is one if a mount is left there.
func DeleteNetNS(path string) error {
	for range maxStacked {
		// MNT_DETACH: an open handle elsewhere must not make deletion fail.
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // nothing (more) mounted there
		}
		if err != nil {
			return fmt.Errorf("delete netns %q: unmount: %w", path, err)
		}
	}
	err := os.Remove(path)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		// Still a mount point, yet nothing to unmount through the path:
		// the pin is covered by a later mount over its directory.
		return fmt.Errorf("delete netns %q: still mounted beneath a later mount over %s, out of reach until that one is unmounted: %w",
			path, filepath.Dir(path), err)
	}
	return fmt.Errorf("delete netns %q: %w", path, err)
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
