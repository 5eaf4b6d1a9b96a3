package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"paradrop/cgroup"
	"paradrop/netconf"
)

// enterChuteNamespaces moves the calling thread, locked to its goroutine
// for the chute's life, into the network namespace the chute is to have
// and into a mount namespace of its own, where it builds the chute's /sys
// at s.Rootfs/sys (see buildSys). Init, cloned from this thread, starts
// from both. Nothing mounted here is seen on the host. The thread leaves
// that mount namespace with the function returned, once init is cloned
// (see leaveMounts); it may be called more than once.
//
// A chute without a namespace from the daemon gets a new one from here,
// so that in both cases the namespace is not the chute's own: a chute
// cannot reconfigure its network, and could not mount a sysfs. The
// exception is a chute that keeps a network capability (Spec.ownNetNS):
// its init is cloned into a new network namespace of its own user
// namespace, which the shim then gives the daemon's eth0 (see
// adoptNetwork).
func enterChuteNamespaces(s Spec) (leave func() error, err error) {
	host, err := os.Open("/proc/thread-self/ns/mnt")
	if err != nil {
		return nil, fmt.Errorf("open mount namespace: %w", err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		host.Close()
		return nil, fmt.Errorf("unshare mount namespace: %w", err)
	}
	leave = sync.OnceValue(func() error { return leaveMounts(host) })
	if err := enterNetAndSys(s); err != nil {
		leave()
		return nil, err
	}
	return leave, nil
}

// leaveMounts takes the calling thread back to the mount namespace host
// and closes it. The namespace the thread leaves is a copy of the host's
// mounts made when the chute started, every chute's /data among them:
// kept for the chute's life it would hold, after the host unmounted one
// (to grow it offline, or at a reboot's simulation), that /data's
// filesystem and loop device, since the host's mounts are private (as on
// OpenWrt, where nothing makes them shared) and the unmount does not
// reach the copy. Init has its own copy, which it leaves for its root.
func leaveMounts(host *os.File) error {
	defer host.Close()
	if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("return to the host's mount namespace: %w", err)
	}
	return nil
}

// enterNetAndSys is enterChuteNamespaces once the thread has its own
// mount namespace.
func enterNetAndSys(s Spec) error {
	// Host mounts still come in; nothing goes out.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make mounts slaves: %w", err)
	}
	if s.ownNetNS() {
		// The chute's init is cloned into a network namespace of its own
		// (see adoptNetwork), whose links init shows in /sys itself.
		return buildSys(filepath.Join(s.Rootfs, "sys"), s.CgroupPath, "")
	}
	if s.NetNS == "" {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare network namespace: %w", err)
		}
		if err := setUpNetNS(); err != nil {
			return err
		}
	} else {
		target, err := os.Open(s.NetNS)
		if err != nil {
			return fmt.Errorf("open netns: %w", err)
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			return fmt.Errorf("join netns %s: %w", s.NetNS, err)
		}
	}
	return buildSys(filepath.Join(s.Rootfs, "sys"), s.CgroupPath, filepath.Join(s.StateDir, sysfsStaging))
}

// setUpNetNS readies the calling thread's new network namespace as every
// namespace the daemon makes is: lo up, the chute sysctls. (netconf's own
// set-up does it through netlink, which a monitor would pay for in memory.)
func setUpNetNS() error {
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return netconf.ApplyChuteSysctls()
}

// loopbackUp brings lo up: the kernel creates a network namespace with lo
// down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// sysNetDirs are the parts of a sysfs mounted in the chute's network
// namespace that a chute sees: its own links, the only entries the kernel
// filters by namespace. The rest of sysfs is the host's: block devices
// (a loop device's backing file names another chute's data image), other
// devices, the cgroup hierarchies of every chute, kernel settings.
var sysNetDirs = []string{"class/net", "devices/virtual/net"}

const sysFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// buildSys mounts at sys the chute's /sys: a read-only tmpfs holding only
// its network namespace's links, from a sysfs the shim mounts there (the
// kernel allows a sysfs mount only to the namespace's owner, which the
// chute is not), and its own cgroup, bound read-only from the host's.
// The links come from a sysfs mounted at staging; without one, only their
// mountpoints are made: a chute that owns its network namespace mounts
// them itself (see sysNetPlan).
func buildSys(sys, cgroupPath, staging string) error {
	if err := os.Mkdir(sys, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mountpoint /sys missing in rootfs: %w", err)
	}
	if err := unix.Mount("tmpfs", sys, "tmpfs", sysFlags, "mode=755,size=64k,nr_inodes=256"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", sys, err)
	}
	if staging == "" {
		for _, dir := range sysNetDirs {
			if err := os.MkdirAll(filepath.Join(sys, dir), 0o755); err != nil {
				return err
			}
		}
	} else if err := bindSysNet(sys, staging); err != nil {
		return err
	}
	if cgroupPath != "" {
		if err := bindCgroup(filepath.Join(sys, "fs", "cgroup"), cgroupPath); err != nil {
			return err
		}
	}
	if err := unix.Mount("", sys, "", unix.MS_REMOUNT|unix.MS_RDONLY|sysFlags, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", sys, err)
	}
	return nil
}

// sysfsStaging is the directory of a chute's state directory where the
// thread that starts it mounts the sysfs its /sys binds from.
const sysfsStaging = "sysfs"

// bindSysNet binds at sys the sysNetDirs of a sysfs it mounts at staging,
// outside the chute's root, in the calling thread's network namespace.
// The sysfs is left there: unmounting it would wait out an RCU grace
// period on the start's way, where ten starts at once queued for them
// (bench/README.md). The thread's copy of the mounts goes once the start
// is reported, and init's loses it with the old root it detaches.
func bindSysNet(sys, staging string) error {
	if err := os.Mkdir(staging, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// Mounted from this thread, the sysfs shows the links of the network
	// namespace it is in: the chute's.
	if err := unix.Mount("sysfs", staging, "sysfs", sysFlags|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount sysfs: %w", err)
	}
	for _, dir := range sysNetDirs {
		if err := bindRO(filepath.Join(staging, dir), filepath.Join(sys, dir)); err != nil {
			return err
		}
	}
	return nil
}

// bindCgroup binds the chute's own group at target, read-only: the
// directory of each v1 hierarchy that has it, or the v2 one.
func bindCgroup(target, path string) error {
	const root = "/sys/fs/cgroup"
	if cgroup.Detect() == cgroup.V2 {
		return bindRO(filepath.Join(root, path), target)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		// Joined hierarchies (cpu,cpuacct) appear once as a directory and
		// again as symlinks.
		if !e.IsDir() {
			continue
		}
		src := filepath.Join(root, e.Name(), path)
		if _, err := os.Stat(src); err != nil {
			continue // not in this hierarchy
		}
		if err := bindRO(src, filepath.Join(target, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func bindRO(source, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", source, target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|sysFlags, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", target, err)
	}
	return nil
}

// adoptNetwork gives the network namespace init was cloned into (owned
// by the chute's user namespace, see Spec.ownNetNS) the chute's network:
// the eth0 of the namespace the daemon made at s.NetNS, which is pinned
// on the new one from then on (see netconf.MoveNetNS), or only lo when
// there is none. It runs before init gets its plan, so the chute's first
// instruction has its network, and its /sys (sysNetPlan) shows it.
//
// A warm init's namespace was set up (lo, sysctls) as it was made
// (prepared): only the chute's eth0 is left to move.
func adoptNetwork(s Spec, pid int, prepared bool) error {
	target := fmt.Sprintf("/proc/%d/ns/net", pid)
	move := netconf.MoveNetNS
	if prepared {
		move = netconf.MoveNetNSPrepared
	}
	// On a fresh goroutine: the calling thread is in the chute's mount
	// namespace, where a pin would not be seen by the daemon.
	errc := make(chan error, 1)
	go func() { errc <- move(s.NetNS, target) }()
	if err := <-errc; err != nil {
		return fmt.Errorf("give the chute its network: %w", err)
	}
	return nil
}
